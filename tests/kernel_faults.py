"""Faults the kernel makes for a test (as root): an FFmpeg frozen into uninterruptible sleep (the
cgroup v1 freezer: SIGKILL waits until it is thawed, as on a hung NFS read), a process that cannot
fork (the pids controller), a small tmpfs to fill (no byte or no inode left). Tests skip where the
machine cannot."""
import contextlib
import os
import subprocess
import uuid
from pathlib import Path

import pytest

V1 = Path("/sys/fs/cgroup")


def _controller(name):
    folder = V1 / name
    if not (folder / "cgroup.procs").exists() or not os.access(folder, os.W_OK):
        pytest.skip(f"needs the cgroup v1 {name} controller, writable (root)")
    return folder


@contextlib.contextmanager
def _group(name):
    root = _controller(name)
    group = root / f"transcode-worker-test-{uuid.uuid4().hex[:8]}"
    group.mkdir()
    try:
        yield group
    finally:
        for pid in (group / "cgroup.procs").read_text().split():
            with contextlib.suppress(OSError):  # (it may have ended meanwhile)
                (root / "cgroup.procs").write_text(pid)
        group.rmdir()


@contextlib.contextmanager
def frozen(pid):
    """Process `pid` in uninterruptible sleep (state D) until the block ends: signals, SIGKILL
    included, wait for the thaw. Yields freeze(other_pid), which puts one more process with it."""
    with _group("freezer") as group:
        def freeze(pid):
            (group / "cgroup.procs").write_text(str(pid))
        freeze(pid)
        (group / "freezer.state").write_text("FROZEN")
        try:
            yield freeze
        finally:
            (group / "freezer.state").write_text("THAWED")


@contextlib.contextmanager
def fork_limit(pid, processes):
    """Process `pid` (and what it forks from now on) in a group of at most `processes` tasks."""
    with _group("pids") as group:
        (group / "pids.max").write_text(str(processes))
        (group / "cgroup.procs").write_text(str(pid))
        yield group


def state_of(pid):
    """The process's state letter (R, S, D, T, Z) from /proc."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


@contextlib.contextmanager
def small_tmpfs(folder, size="256k", inodes=64):
    """A tmpfs of `size` bytes and `inodes` files mounted on `folder` (made if missing) for the block."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},nr_inodes={inodes}", "tmpfs", str(folder)],
                             capture_output=True, text=True)
    if mounted.returncode:
        pytest.skip(f"needs to mount a tmpfs (root): {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "--lazy", str(folder)], check=True)


def fill(folder):
    """Fill the file system of `folder`: bytes in one file, then inodes with empty ones; returns
    what was made (remove it to free the space)."""
    made = [Path(folder) / "filler"]
    with contextlib.suppress(OSError), open(made[0], "wb") as fh:
        while True:
            fh.write(b"\0" * 65536)
            fh.flush()
    for n in range(100_000):
        try:
            (Path(folder) / f"filler{n}").touch()
        except OSError:
            break
        made.append(Path(folder) / f"filler{n}")
    return made
