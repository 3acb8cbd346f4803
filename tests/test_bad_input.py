"""Bad job commands against the real service: each gets its 4xx naming the field, no FFmpeg is
spawned, and no file is created or deleted anywhere under the roots."""
import os

import pytest
import requests

import media_files as mf


def tree(*roots):
    """Every path under the roots, with size and mtime: to prove nothing was touched."""
    found = set()
    for root in roots:
        for folder, dirs, files in os.walk(root):
            for name in dirs + files:
                path = os.path.join(folder, name)
                st = os.lstat(path)
                found.add((path, st.st_size, st.st_mtime_ns))
    return found


@pytest.fixture(scope="module")
def outside(tmp_path_factory, media_root):
    """A real movie outside the media roots, and a symlink inside a root pointing at it."""
    folder = tmp_path_factory.mktemp("outside")
    target = folder / "secret.mp4"
    target.write_bytes((media_root / mf.H264).read_bytes())
    link = media_root / "link to outside.mp4"
    link.symlink_to(target)
    (media_root / "a folder.mkv").mkdir(exist_ok=True)
    yield target, link
    link.unlink()
    (media_root / "a folder.mkv").rmdir()


def good(media_root, **changes):
    body = {"job_id": "bad-input", "source_path": str(media_root / mf.H264), "configuration": {}}
    configuration = changes.pop("configuration", {})
    body.update(changes)
    body["configuration"].update(configuration)
    return body


CASES = {
    # name: (body maker or raw bytes, expected status, field named in the answer or None)
    "traversal in job_id": (lambda m, o: good(m, job_id="../../etc"), 422, "job_id"),
    "slash in job_id": (lambda m, o: good(m, job_id="a/b"), 422, "job_id"),
    "traversal in output_path": (lambda m, o: good(m, output_path="../../escape"), 422, "output_path"),
    "absolute output_path outside": (lambda m, o: good(m, output_path="/tmp"), 422, "output_path"),
    "output_path name over NAME_MAX": (lambda m, o: good(m, output_path="a" * 300), 422, "output_path"),
    "newline in output_path": (lambda m, o: good(m, output_path="x\nERROR forged line"), 422, "output_path"),
    "source outside the roots": (lambda m, o: good(m, source_path=str(o[0])), 422, "source_path"),
    "symlink inside a root pointing outside": (lambda m, o: good(m, source_path=str(o[1])), 422, "source_path"),
    "concat: source": (lambda m, o: good(m, source_path=f"concat:{m / mf.H264}|{o[0]}"), 422, "source_path"),
    "http: source": (lambda m, o: good(m, source_path="http://127.0.0.1:1/movie.mkv"), 422, "source_path"),
    "pipe: source": (lambda m, o: good(m, source_path="pipe:0"), 422, "source_path"),
    "relative source": (lambda m, o: good(m, source_path=mf.H264), 422, "source_path"),
    "missing file": (lambda m, o: good(m, source_path=str(m / "no such movie.mkv")), 422, "source_path"),
    "folder as source": (lambda m, o: good(m, source_path=str(m / "a folder.mkv")), 422, "source_path"),
    "text file as source": (lambda m, o: good(m, source_path=str(m / mf.TEXT)), 422, "source_path"),
    "remux of video players cannot decode": (
        lambda m, o: good(m, source_path=str(m / mf.DVD), configuration={"force_remux": True}), 422,
        "configuration.force_remux"),
    "malformed seek_time": (lambda m, o: good(m, configuration={"seek_time": "5 minutes"}), 422,
                            "configuration.seek_time"),
    "seek_time past the end": (lambda m, o: good(m, configuration={"seek_time": "00:10:00"}), 422,
                               "configuration.seek_time"),
    "zero bitrate": (lambda m, o: good(m, configuration={"bitrate_bps": 0}), 422, "configuration.bitrate_bps"),
    "a grid of 0.1 s segments": (lambda m, o: good(m, configuration={"segment_duration_s": 0.1}), 422,
                                 "configuration.segment_duration_s"),
    "a first segment of text": (lambda m, o: good(m, configuration={"first_segment_s": "soon"}), 422,
                                "configuration.first_segment_s"),
    "negative bitrate": (lambda m, o: good(m, configuration={"bitrate_bps": -5}), 422, "configuration.bitrate_bps"),
    "absurd bitrate": (lambda m, o: good(m, configuration={"bitrate_bps": 10**15}), 422,
                       "configuration.bitrate_bps"),
    "unknown encoder": (lambda m, o: good(m, configuration={"encoder": "h264_nvenc"}), 422,
                        "configuration.encoder"),
    "bitrate as a string": (lambda m, o: good(m, configuration={"bitrate_bps": "5M"}), 422,
                            "configuration.bitrate_bps"),
    "force_remux as a string": (lambda m, o: good(m, configuration={"force_remux": "yes"}), 422,
                                "configuration.force_remux"),
    "job_id as a number": (lambda m, o: good(m, job_id=42), 422, "job_id"),
    "configuration as a list": (lambda m, o: {**good(m), "configuration": [1]}, 422, "configuration"),
    "missing source_path": (lambda m, o: {"job_id": "bad-input"}, 422, "source_path"),
    "unknown field": (lambda m, o: good(m, sauce="hot"), 422, "sauce"),
    "not JSON": (b"job_id=1&source_path=/x", 400, None),
    "JSON but not an object": (b'["bad-input"]', 400, None),
    "empty body": (b"", 400, None),
    "JSON nested deeper than any parser goes": (b"[" * 5000 + b"]" * 5000, 400, None),
    "huge body": (b'{"job_id": "' + b"x" * (2 * 1024 * 1024) + b'"}', 413, None),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input(worker, media_root, outside, case):
    make, status, field = CASES[case]
    roots = (media_root, worker.segment_root, outside[0].parent)
    before_tree, before_log = tree(*roots), worker.log().count("FFmpeg started")
    if isinstance(make, bytes):
        response = requests.post(worker.url + "/v1/jobs", data=make, timeout=30,
                                 headers={"Content-Type": "application/json"})
    else:
        response = worker.post_job(make(media_root, outside))
    assert response.status_code == status, response.text
    answer = response.json()
    assert answer["error"]
    if field is not None:
        assert field in answer["fields"], answer
    assert worker.log().count("FFmpeg started") == before_log
    assert worker.ffmpeg_pids() == []
    assert tree(*roots) == before_tree
    assert worker.jobs() == []
