"""Short child processes (ffprobe, a subtitle read-out, a tone-map LUT, a hardware trial) run to an
end within a bound, whatever the child does.

subprocess.run(timeout=...) kills a child that overruns, then waits for it without a bound: a child
in uninterruptible sleep (a read from a hung network share) holds its caller there until the share
answers, and with it whatever the caller holds. run() gives the killed child KILL_WAIT_S, then
leaves it to a thread that reaps it whenever it ends, and raises TimeoutExpired all the same.
"""
import logging
import subprocess
import threading

log = logging.getLogger(__name__)

KILL_WAIT_S = 5.0


def run(argv, timeout_s, input=None, pass_fds=()):
    """subprocess.run(argv, capture_output=True, timeout=timeout_s) with stdin closed (or `input`),
    returning within timeout_s + KILL_WAIT_S; raises TimeoutExpired (and OSError as Popen does).
    `pass_fds`: descriptors the child inherits under the same numbers (a source the worker opened)."""
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, pass_fds=pass_fds)
    try:
        stdout, stderr = proc.communicate(input, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        try:
            proc.communicate(timeout=KILL_WAIT_S)
        except subprocess.TimeoutExpired:
            log.error("%s (pid %d) did not end %gs after SIGKILL (uninterruptible sleep: a hung disk or "
                      "network share?): it is reaped whenever it ends", argv[0], proc.pid, KILL_WAIT_S)
            threading.Thread(target=_reap, args=(proc,), name=f"reap-{proc.pid}", daemon=True).start()
        raise subprocess.TimeoutExpired(argv, timeout_s) from None
    except BaseException:
        proc.kill()
        raise
    return subprocess.CompletedProcess(argv, proc.returncode, stdout, stderr)


def _reap(proc):
    proc.wait()
    for pipe in (proc.stdin, proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()
    log.warning("%s (pid %d) has ended at last", proc.args[0], proc.pid)
