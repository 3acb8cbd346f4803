"""The real service under gunicorn on loopback, real FFmpeg, real HTTP clients."""
import concurrent.futures
import os
import re
import signal
import socket
import subprocess
import time

import psutil
import pytest
import requests

import media_files as mf
from transcode_worker.runstate import LOCK_FILE
from worker_process import ffmpeg_slow_at, first_frame_luma, first_segment_url, play, probe_duration, process_gone, wait_for

SEGMENT_S = 2.0  # the test workers' segment_duration_s


def source(media_root, name):
    return str(media_root / name)


def test_player_reads_the_stream_right_after_the_202(worker, media_root):
    src = source(media_root, mf.H264)
    response = worker.post_job({"job_id": "play1", "source_path": src})
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["playlist_url"].endswith("/play1.m3u8") and body["pid"]
    code, decoded, stderr = play(f"{worker.url}/play1.m3u8")
    assert code == 0, stderr
    assert abs(decoded - probe_duration(src)) <= SEGMENT_S
    job = worker.wait_state("play1", {"COMPLETED"})
    assert job["progress"] == 100.0 and job["last_segment_id"] >= 2 and job["speed"].endswith("x")
    assert worker.delete("play1").status_code == 200


@pytest.mark.parametrize("name", list(mf.SOURCES))
@pytest.mark.parametrize("remux", [False, True])
def test_every_kind_of_source_plays(worker, media_root, name, remux):
    src = source(media_root, name)
    job_id = f"kind-{list(mf.SOURCES).index(name)}-{int(remux)}"
    response = worker.post_job({"job_id": job_id, "source_path": src, "configuration": {"force_remux": remux}})
    assert response.status_code == 202, response.text
    code, decoded, stderr = play(f"{worker.url}/{job_id}.m3u8")
    assert code == 0, stderr
    assert abs(decoded - probe_duration(src)) <= SEGMENT_S + 0.5
    assert worker.wait_state(job_id, {"COMPLETED"})["error"] is None
    worker.delete(job_id)


def interlaced_frames(url):
    """(interlaced, progressive) frame counts FFmpeg's idet filter finds reading `url`."""
    out = subprocess.run(["ffmpeg", "-hide_banner", "-nostdin", "-nostats", "-i", url, "-vf", "idet", "-an",
                          "-f", "null", "-"], capture_output=True, timeout=120, check=True).stderr.decode()
    counts = re.search(r"Multi frame detection: TFF:\s*(\d+) BFF:\s*(\d+) Progressive:\s*(\d+)", out)
    tff, bff, progressive = map(int, counts.groups())
    return tff + bff, progressive


@pytest.mark.parametrize("name,job_id", [(mf.DVD, "deinterlace-dvd"), (mf.DVB, "deinterlace-dvb")])
def test_an_interlaced_source_plays_deinterlaced(worker, media_root, name, job_id):
    src = source(media_root, name)
    assert interlaced_frames(src)[1] == 0  # the source combs on every frame
    assert worker.post_job({"job_id": job_id, "source_path": src}).status_code == 202
    worker.wait_state(job_id, {"COMPLETED"})
    combed, progressive = interlaced_frames(f"{worker.url}/{job_id}.m3u8")
    assert progressive >= 0.95 * (combed + progressive), (combed, progressive)
    worker.delete(job_id)


def test_seek_starts_the_stream_at_the_requested_time(worker, media_root):
    src = source(media_root, mf.LONG)
    first = worker.post_job({"job_id": "seek1", "source_path": src, "configuration": {"bitrate_bps": 1_000_000}})
    assert first.status_code == 202
    worker.wait_state("seek1", {"RUNNING", "COMPLETED"})
    seek_s = 300
    second = worker.post_job({"job_id": "seek1", "source_path": src,
                              "configuration": {"bitrate_bps": 1_000_000, "seek_time": "00:05:00"}})
    assert second.status_code == 202, second.text
    # a run starts there unless the running one gets there within a player's patience (this small
    # film's runs are fast): either way the answer says which
    assert second.json()["video_restarted"] is (second.json()["restarts"] == 1)
    luma = first_frame_luma(first_segment_url(f"{worker.url}/seek1.m3u8"))
    # the source's luma grows 0.36 per second: 10 s of tolerance is ~4 levels
    assert abs(luma - mf.luma_at(seek_s)) <= 4, (luma, mf.luma_at(seek_s))
    # (a run just started there is at its first segment's start, its progress not reported yet)
    job = wait_for(lambda: (j := worker.job("seek1"))["position_s"] >= seek_s and j["progress"] is not None and j,
                   30, what="progress past the seek")
    assert job["progress"] >= 100 * seek_s / mf.LONG_SECONDS
    worker.delete("seek1")


def test_identical_command_keeps_ffmpeg_and_a_changed_one_replaces_it(worker, media_root):
    body = {"job_id": "same1", "source_path": source(media_root, mf.LONG),
            "configuration": {"bitrate_bps": 800_000}}
    first = worker.post_job(body)
    assert first.status_code == 202
    pid = first.json()["pid"]
    again = worker.post_job(body)
    assert again.status_code == 200
    assert again.json()["pid"] == pid and again.json()["restarts"] == 0
    assert psutil.pid_exists(pid)
    alias = worker.post_job(body, path="/v1/workers/test-worker/heartbeats")
    assert alias.status_code == 200 and alias.json()["pid"] == pid
    changed = worker.post_job({**body, "configuration": {"bitrate_bps": 1_200_000}})
    assert changed.status_code == 202
    new_pid = changed.json()["pid"]
    assert new_pid != pid
    wait_for(lambda: process_gone(pid), 5, what="old FFmpeg gone")
    assert worker.video_ffmpeg_pids() == [new_pid]
    worker.delete("same1")


def test_alias_path_for_another_worker_is_404(worker, media_root):
    response = worker.post_job({"job_id": "x", "source_path": source(media_root, mf.H264)},
                               path="/v1/workers/someone-else/heartbeats")
    assert response.status_code == 404


def test_delete_leaves_no_ffmpeg_and_no_folder(worker, media_root):
    response = worker.post_job({"job_id": "del1", "source_path": source(media_root, mf.LONG)})
    pid = response.json()["pid"]
    folder = response.json()["output_path"]
    worker.wait_state("del1", {"RUNNING"})
    assert os.path.isdir(folder)
    assert worker.delete("del1").status_code == 200
    assert process_gone(pid)
    assert not os.path.exists(folder)
    assert worker.ffmpeg_pids() == []
    assert requests.get(f"{worker.url}/v1/jobs/del1", timeout=5).status_code == 404
    assert requests.get(f"{worker.url}/del1.m3u8", timeout=5).status_code == 404
    assert worker.delete("del1").status_code == 404


def test_output_path_inside_segment_root(worker, media_root):
    response = worker.post_job({"job_id": "out1", "source_path": source(media_root, mf.H264),
                                "output_path": "shows/out1"})
    assert response.status_code == 202, response.text
    assert response.json()["output_path"] == str(worker.segment_root / "shows" / "out1")
    assert play(f"{worker.url}/out1.m3u8")[0] == 0
    worker.wait_state("out1", {"COMPLETED"})
    worker.delete("out1")
    os.rmdir(worker.segment_root / "shows")  # the parent the command named is the orchestrator's


def test_corrupt_source_fails_with_the_error_tail_and_players_hear_at_once(worker, media_root):
    response = worker.post_job({"job_id": "bad1", "source_path": source(media_root, mf.CORRUPT)})
    assert response.status_code == 202
    started = time.monotonic()
    playlist = requests.get(f"{worker.url}/bad1.m3u8", timeout=30)
    assert playlist.status_code == 404
    assert time.monotonic() - started < 10  # not the 20 s wait bound
    job = worker.wait_state("bad1", {"FAILED"}, timeout=10)
    assert job["error"]["message"].startswith("FFmpeg")
    assert job["error"]["ffmpeg_stderr_tail"]
    assert "failed" in playlist.json()["error"]
    # once failed, never FFmpeg's leftovers: every playlist is 404 with the reason
    for name in ("bad1.m3u8", "bad1.media.m3u8"):
        again = requests.get(f"{worker.url}/{name}", timeout=30)
        assert again.status_code == 404 and again.json()["error"].startswith("job bad1 failed: FFmpeg"), name
    worker.delete("bad1")


def test_a_job_whose_ffmpeg_died_serves_no_leftovers(worker, media_root):
    response = worker.post_job({"job_id": "died", "source_path": source(media_root, mf.LONG),
                                "configuration": {"bitrate_bps": 1_000_000}})
    assert response.status_code == 202
    running = worker.wait_state("died", {"RUNNING"})
    assert requests.get(f"{worker.url}/died.media.m3u8", timeout=30).status_code == 200
    os.kill(running["pid"], signal.SIGKILL)  # FFmpeg crashed: its playlist and segments are on disk
    failed = worker.wait_state("died", {"FAILED"})
    for name in ("died.m3u8", "died.media.m3u8"):
        answer = requests.get(f"{worker.url}/{name}", timeout=30)
        assert answer.status_code == 404 and answer.json()["error"] == f"job died failed: {failed['error']['message']}"
    worker.delete("died")


def test_hls_headers_and_byte_ranges(worker, media_root):
    worker.post_job({"job_id": "hdr1", "source_path": source(media_root, mf.H264)})
    playlist = requests.get(f"{worker.url}/hdr1.m3u8", timeout=30)
    assert playlist.headers["Content-Type"] == "application/vnd.apple.mpegurl"
    assert playlist.headers["Cache-Control"] == "no-cache"
    assert playlist.headers["Access-Control-Allow-Origin"] == "*"
    segment_url = f"{worker.url}/hdr1_0.ts"
    whole = requests.get(segment_url, timeout=30)
    assert whole.status_code == 200 and whole.headers["Content-Type"] == "video/mp2t"
    assert whole.content[0] == 0x47  # MPEG-TS sync byte
    part = requests.get(segment_url, headers={"Range": "bytes=188-375"}, timeout=10)
    assert part.status_code == 206 and part.content == whole.content[188:376]
    assert part.headers["Content-Range"].startswith("bytes 188-375/")
    head = requests.head(segment_url, timeout=10)
    assert head.status_code == 200 and head.headers["Content-Length"] == str(len(whole.content))
    assert requests.get(segment_url, headers={"If-None-Match": whole.headers["ETag"]}, timeout=10).status_code == 304
    preflight = requests.options(segment_url, headers={"Origin": "http://tv.example",
                                                       "Access-Control-Request-Headers": "range"}, timeout=5)
    assert preflight.headers["Access-Control-Allow-Origin"] == "*"
    assert "Range" in preflight.headers["Access-Control-Allow-Headers"]
    worker.wait_state("hdr1", {"COMPLETED"})
    worker.delete("hdr1")


def test_a_player_that_stops_reading_holds_up_nobody(worker, media_root):
    """A player that drops a segment half read (a seek, a quality switch) and keeps its socket
    open: the next players are answered at once, not after the server gives up on it."""
    worker.post_job({"job_id": "stuck1", "source_path": source(media_root, mf.H264)})
    worker.wait_state("stuck1", {"COMPLETED"})
    with socket.create_connection(("127.0.0.1", worker.port), timeout=10) as stuck:
        stuck.sendall(b"GET /stuck1_0.ts HTTP/1.1\r\nHost: tv\r\nConnection: close\r\n\r\n")
        assert stuck.recv(4096).startswith(b"HTTP/1.1 200")
        time.sleep(0.2)  # the server has written all it can and is done with the request
        started = time.monotonic()
        assert requests.get(f"{worker.url}/stuck1.m3u8", timeout=10).status_code == 200
        waited = time.monotonic() - started
    # gunicorn 26-27 hold every other request 2 s here, waiting for the stuck socket to close
    assert waited < 1.0, f"the next player waited {waited:.1f}s"
    worker.delete("stuck1")


def test_a_connection_kept_alive_for_thousands_of_requests_closes_cleanly(make_worker):
    """nginx keeps its connections to the app alive: one carries every request for hours. Each
    request wrapped the connection's close once more, and closing it after a thousand requests
    recursed past Python's limit: on a stop the app's process died with exit status 255 instead
    of stopping its jobs in order."""
    worker = make_worker(front="none")
    with requests.Session() as session:
        answers = [session.get(f"{worker.url}/healthz", timeout=10).status_code for _ in range(1500)]
        assert answers == [200] * 1500
        worker.stop()  # the connection still open: the app closes it as it stops
    assert worker.proc.returncode == 0
    assert "RecursionError" not in worker.log() and "exited with code" not in worker.log()


def test_a_segment_not_yet_written_waits_then_arrives(worker, media_root):
    worker.post_job({"job_id": "wait1", "source_path": source(media_root, mf.LONG),
                     "configuration": {"bitrate_bps": 800_000}})
    requests.get(f"{worker.url}/wait1.m3u8", timeout=30)
    ahead = worker.job("wait1")["last_segment_id"] + 3
    response = requests.get(f"{worker.url}/wait1_{ahead}.ts", timeout=30)
    assert response.status_code == 200 and response.content[0] == 0x47
    worker.delete("wait1")


MALFORMED = {"/%2e%2e/%2e%2e/etc/passwd", "/..%2fetc%2fpasswd", "/%00.m3u8"}  # ("/../" requests sends as "/")


@pytest.mark.parametrize("path", [
    "/../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/..%2fetc%2fpasswd", "/nojob.m3u8", "/nojob_0.ts",
    "/x.txt", "/worker.toml", "/job_abc.ts", "/job_-1.ts", "/.m3u8", "/a/b.m3u8", "/%00.m3u8",
    # the names added for real films, of no job, and near misses of them
    "/nojob.media.m3u8", "/nojob_0.m4s", "/nojob_init_0.mp4", "/nojob.sub0.m3u8", "/nojob_sub0_0.vtt",
    "/x.media.m3u8.tmp", "/x_0.m4s.tmp", "/x.burn.ass", "/x.fonts", "/x_init_.mp4", "/x.sub.m3u8",
    "/x_sub0_.vtt", "/x_0.vtt", "/x.probe-cache.json",
])
def test_other_names_are_404_at_once(worker, path):
    started = time.monotonic()
    response = requests.get(worker.url + path, timeout=10)
    # a path that climbs above / or holds a NUL is malformed: nginx (the front) refuses it outright
    assert response.status_code == (400 if path in MALFORMED else 404)
    assert response.json()["error"]
    assert time.monotonic() - started < 2


def test_finished_job_answers_missing_segments_at_once(worker, media_root):
    worker.post_job({"job_id": "fin1", "source_path": source(media_root, mf.H264)})
    job = worker.wait_state("fin1", {"COMPLETED"})
    started = time.monotonic()
    assert requests.get(f"{worker.url}/fin1_{job['last_segment_id'] + 5}.ts", timeout=10).status_code == 404
    assert time.monotonic() - started < 2
    worker.delete("fin1")


def test_capacity_gives_503_with_retry_after(make_worker, media_root):
    w = make_worker(max_concurrent_jobs=1)
    long = source(media_root, mf.LONG)
    assert w.post_job({"job_id": "cap1", "source_path": long}).status_code == 202
    refused = w.post_job({"job_id": "cap2", "source_path": long})
    assert refused.status_code == 503 and int(refused.headers["Retry-After"]) > 0
    assert "capacity" in refused.json()["error"]
    assert w.video_ffmpeg_pids() == [w.job("cap1")["pid"]]
    # a changed command for the running job is not a new job: it is allowed at capacity
    assert w.post_job({"job_id": "cap1", "source_path": long,
                       "configuration": {"seek_time": "00:01:00"}}).status_code == 202
    w.delete("cap1")
    assert w.post_job({"job_id": "cap2", "source_path": long}).status_code == 202
    w.delete("cap2")


def test_shutdown_stops_ffmpeg_and_removes_folders(make_worker, media_root):
    w = make_worker()
    pid = w.post_job({"job_id": "sd1", "source_path": source(media_root, mf.LONG)}).json()["pid"]
    w.wait_state("sd1", {"RUNNING"})
    w.stop()
    assert w.proc.returncode == 0
    assert not psutil.pid_exists(pid)
    assert [p.name for p in w.segment_root.iterdir()] == [LOCK_FILE]
    assert "shutting down" in w.log()


def test_token_protects_job_commands_not_players(make_worker, media_root):
    w = make_worker(api_token="s3cret")
    body = {"job_id": "auth1", "source_path": source(media_root, mf.H264)}
    assert w.post_job(body).status_code == 401
    assert w.post_job(body, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert requests.get(w.url + "/v1/jobs", timeout=5).status_code == 401
    good = {"Authorization": "Bearer s3cret"}
    assert w.post_job(body, headers=good).status_code == 202
    assert requests.get(w.url + "/auth1.m3u8", timeout=30).status_code == 200
    assert requests.get(w.url + "/healthz", timeout=5).status_code == 200
    assert requests.delete(w.url + "/v1/jobs/auth1", headers=good, timeout=30).status_code == 200


@pytest.mark.parametrize("victim", ["worker process", "gunicorn master"])
def test_sigkill_leaves_no_ffmpeg(make_worker, media_root, victim):
    w = make_worker()
    ffmpeg_pid = w.post_job({"job_id": "kill1", "source_path": source(media_root, mf.LONG)}).json()["pid"]
    w.wait_state("kill1", {"RUNNING"})
    holder = psutil.Process(ffmpeg_pid).parent()  # the gunicorn worker process that owns the job
    family = [p.pid for p in w.descendants()]
    (holder if victim == "worker process" else psutil.Process(w.proc.pid)).kill()
    wait_for(lambda: process_gone(ffmpeg_pid), 2, interval=0.02, what="FFmpeg to die with its worker")
    folder = w.segment_root / "kill1"
    if victim == "worker process":
        # gunicorn's master starts a new worker process, which removes what the old one left
        wait_for(lambda: not folder.exists(), 30, what="the new worker process to clean up")
    else:
        # the orphaned worker process notices its master is gone and shuts down cleanly
        wait_for(lambda: not any(psutil.pid_exists(p) for p in family if p != ffmpeg_pid), 10,
                 what="the orphaned worker process to exit")
        assert not folder.exists()
        w.start()
    assert w.jobs() == []
    w.stop()


@pytest.mark.parametrize("front", ["nginx", "none"])
def test_a_waiting_player_that_gives_up_frees_its_share(make_worker, media_root, front, tmp_path):
    # one request thread may wait; its player hangs up: the next player may wait at once
    worker = make_worker(http_threads=2, playlist_wait_share=0.5, playlist_wait_s=20.0, front=front,
                         ffmpeg_path=ffmpeg_slow_at(None, tmp_path, rate=0.2), speed_guard_s=0)
    assert worker.post_job({"job_id": "far", "source_path": source(media_root, mf.LONG),
                            "configuration": {"bitrate_bps": 300_000}}).status_code == 202
    worker.wait_state("far", {"RUNNING"})
    with pytest.raises(requests.Timeout):  # a run starts there, at a fifth of real time: it waits
        requests.get(f"{worker.url}/far_200.ts", timeout=1.0)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        time.sleep(0.5)
        waiting = pool.submit(requests.get, f"{worker.url}/far_200.ts", timeout=60)
        time.sleep(1.0)
        assert not waiting.done(), waiting.result().text  # it waits: the share was free again
        worker.delete("far")
        assert waiting.result().status_code == 404


@pytest.mark.parametrize("front", ["nginx", "none"])  # nginx says no itself; without it, the app does
def test_waiting_players_beyond_their_share_get_503_at_once_and_commands_still_work(make_worker, media_root, front,
                                                                                    tmp_path):
    # 4 request threads, half of them for waiting: two players wait, the third is told at once
    worker = make_worker(http_threads=4, playlist_wait_share=0.5, playlist_wait_s=15.0, front=front,
                         ffmpeg_path=ffmpeg_slow_at(None, tmp_path, rate=0.2), speed_guard_s=0)
    assert worker.post_job({"job_id": "far", "source_path": source(media_root, mf.LONG),
                            "configuration": {"bitrate_bps": 300_000}}).status_code == 202
    worker.wait_state("far", {"RUNNING"})
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        # a segment far ahead: a run starts there at a fifth of real time; both wait for it
        waiting = [pool.submit(requests.get, f"{worker.url}/far_200.ts", timeout=60) for _ in range(2)]
        time.sleep(1.0)
        started = time.monotonic()
        third = requests.get(f"{worker.url}/far_200.ts", timeout=60)
        assert third.status_code == 503 and third.headers["Retry-After"] == "1"
        assert "waiting for FFmpeg" in third.json()["error"]
        assert time.monotonic() - started < 1.0
        assert requests.get(f"{worker.url}/healthz", timeout=5).status_code == 200
        assert requests.get(f"{worker.url}/far_0.ts", timeout=5).status_code == 200  # a ready file
        other = worker.post_job({"job_id": "other", "source_path": source(media_root, mf.H264)})
        assert other.status_code == 202 and worker.delete("other").status_code == 200
        assert all(not f.done() for f in waiting)  # still waiting, as they should
        worker.delete("far")  # the job ends: they are answered at once
        assert [f.result().status_code for f in waiting] == [404, 404]
