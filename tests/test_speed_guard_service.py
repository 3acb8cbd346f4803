"""The speed guard on the real service: a job held below real time steps down once, keeps its
job id, playlist URL and segment numbering, and plays to its end across the discontinuity."""
import json

import requests

import media_files as mf
from transcode_worker import hls_names
from transcode_worker.progress import segment_numbers
from worker_process import ffmpeg_slow_at, play, wait_for

SEEK_S = 580  # the last 20 s of the 600 s source
def test_a_job_that_falls_behind_steps_down_and_plays_on(make_worker, media_root, tmp_path):
    worker = make_worker(ffmpeg_path=ffmpeg_slow_at("veryfast", tmp_path), speed_guard_s=3.0,
                         encoder_preset="veryfast")
    body = {"job_id": "guarded", "source_path": str(media_root / mf.LONG),
            "configuration": {"seek_time": f"00:09:{SEEK_S - 540:02d}", "bitrate_bps": 300_000}}
    first = worker.post_job(body).json()
    assert first["speed_guard"]["step"] == 0 and first["speed_guard"]["preset"] == "veryfast"
    assert first["speed_guard"]["light_analysis"] is False
    job = wait_for(lambda: (j := worker.job("guarded"))["speed_guard"]["step"] == 1 and j, 40,
                   what="the job to step down")
    guard = job["speed_guard"]
    assert (guard["preset"], guard["light_analysis"]) == ("veryfast", True)
    assert "real time" in guard["reason"] and "stepped down" in guard["reason"]
    # the next run goes on from the first segment not made, on the same grid
    assert job["job_id"] == "guarded" and job["first_segment_id"] > first["first_segment_id"]
    assert job["playlist_url"] == first["playlist_url"]
    assert worker.post_job(body).status_code == 200  # the orchestrator's retry is the same job, not a new one
    job = worker.wait_state("guarded", {"COMPLETED"}, timeout=60)
    assert job["speed_guard"]["step"] == 1

    text = requests.get(f"{worker.url}/{hls_names.media_playlist('guarded')}", timeout=10).text
    numbers = segment_numbers(text, "guarded")
    assert numbers == list(range(len(numbers))) and len(numbers) > 4  # one numbering, no gap, no repeat
    assert "#EXT-X-DISCONTINUITY" not in text and text.rstrip().endswith("#EXT-X-ENDLIST")
    target = [line for line in text.splitlines() if line.startswith("#EXT-X-TARGETDURATION")]
    assert target == ["#EXT-X-TARGETDURATION:2"]  # the test workers' segment_duration_s, unchanged

    # a player from the seek to the end, across the step: every frame, on one clock
    code, seconds, err = play(first["playlist_url"], start_s=SEEK_S)
    assert code == 0 and abs(seconds - (600 - SEEK_S)) < 1.5, (seconds, err)
    # what it learnt: the next job like this one begins at the step that kept up
    learnt = json.loads((worker.workdir / "spool" / "speed-steps.json").read_text())
    assert list(learnt.values()) == [1]
    worker.delete("guarded")
    again = worker.post_job({**body, "job_id": "next"}).json()
    assert again["speed_guard"]["step"] == 1 and "began at step 1" in again["speed_guard"]["reason"]
    worker.delete("next")
