"""FastPath in process: the real worker app and a real FFmpeg job, the Flask test client. What is
ready goes out in front of Flask; everything else reaches Flask, and both answer alike."""
import time

import pytest

import media_files as mf
from transcode_worker.app import create_app
from transcode_worker.config import load_settings
from worker_process import wait_for

pytestmark = pytest.mark.integration  # FFmpeg runs: not for `make unit`
HEVC = "hevc 10bit ac3 5.1 ñandú.mkv"


@pytest.fixture(scope="module")
def app(media_root, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fast-path")
    settings = load_settings(environ={
        "TRANSCODE_WORKER_MEDIA_ROOTS": str(media_root), "TRANSCODE_WORKER_SEGMENT_ROOT": str(tmp / "segments"),
        "TRANSCODE_WORKER_SPOOL_DIR": str(tmp / "spool"), "TRANSCODE_WORKER_PLAYLIST_WAIT_S": "1",
    })
    app = create_app(settings)
    ctx = app.extensions["transcode_worker"]
    response = app.test_client().post("/v1/jobs", json={
        "job_id": "fp", "source_path": str(media_root / mf.H264), "configuration": {"force_remux": True}})
    assert response.status_code == 202, response.get_json()
    response = app.test_client().post("/v1/jobs", json={  # HEVC: fMP4 segments
        "job_id": "fm", "source_path": str(media_root / HEVC), "configuration": {"force_remux": True}})
    assert response.status_code == 202, response.get_json()
    wait_for(lambda: ctx.manager.get("fp").state.value == "COMPLETED", 60, what="the remux")
    wait_for(lambda: ctx.manager.get("fm").state.value == "COMPLETED", 60, what="the HEVC remux")
    yield app
    ctx.shutdown()


@pytest.fixture
def flask_calls(app):
    """The requests that reached Flask behind FastPath, by path."""
    fast_path = app.wsgi_app
    flask_app = fast_path.wsgi_app
    calls = []

    def recording(environ, start_response):
        calls.append(environ["PATH_INFO"])
        return flask_app(environ, start_response)

    fast_path.wsgi_app = recording
    yield calls
    fast_path.wsgi_app = flask_app


def without_date(headers):
    return {name: value for name, value in headers.items() if name != "Date"}  # the server's to set


def job(app):
    return app.extensions["transcode_worker"].manager.get("fp")


def test_a_ready_playlist_and_whole_segment_never_reach_flask(app, flask_calls):
    client = app.test_client()
    variants = client.get("/fp.m3u8")
    assert variants.status_code == 200 and variants.content_type == "application/vnd.apple.mpegurl"
    assert "#EXT-X-STREAM-INF:" in variants.text and "\nfp.media.m3u8\n" in variants.text
    playlist = client.get("/fp.media.m3u8")
    assert playlist.status_code == 200 and playlist.content_type == "application/vnd.apple.mpegurl"
    assert "#EXT-X-ENDLIST" in playlist.text and "fp_1.ts" in playlist.text
    segment = client.get("/fp_1.ts")
    assert segment.status_code == 200
    assert segment.data == (job(app).folder / "fp_1.ts").read_bytes()
    assert segment.headers["Content-Length"] == str(len(segment.data))
    head = client.head("/fp_1.ts")
    assert head.status_code == 200 and head.data == b"" and head.headers["Content-Length"] == str(len(segment.data))
    assert flask_calls == []


def test_a_segment_served_in_front_of_flask_is_recorded_and_counted(app, flask_calls):
    metrics = app.extensions["transcode_worker"].metrics
    served = metrics.registry.get_sample_value("transcode_segments_served_total")
    job(app).furthest_requested = None
    before = time.monotonic()
    assert app.test_client().get("/fp_1.ts").status_code == 200
    assert job(app).furthest_requested == 1 and job(app).last_request_at >= before  # a player is watching
    assert metrics.registry.get_sample_value("transcode_segments_served_total") == served + 1
    text = metrics.render().decode()
    assert 'transcode_http_request_duration_seconds_count{endpoint="hls.hls_file",method="GET",status="200"}' in text
    assert flask_calls == []


@pytest.mark.parametrize("headers, status", [
    ({"Range": "bytes=188-375"}, 206),
    ({"Range": "bytes=0-"}, 206),
    ({"If-None-Match": '"another"'}, 200),
    ({"If-Modified-Since": "Thu, 01 Jan 1970 00:00:00 GMT"}, 200),
])
def test_ranges_and_conditions_go_to_flask(app, flask_calls, headers, status):
    response = app.test_client().get("/fp_0.ts", headers=headers)
    assert response.status_code == status
    assert flask_calls == ["/fp_0.ts"]


def test_flask_answers_a_whole_segment_like_the_fast_path(app, flask_calls):
    client = app.test_client()
    fast = client.get("/fp_0.ts")
    slow = client.get("/fp_0.ts", headers={"If-None-Match": '"another"'})
    assert flask_calls == ["/fp_0.ts"]
    assert slow.data == fast.data
    assert without_date(slow.headers) == without_date(fast.headers)
    # each one's validators revalidate against the other
    assert client.get("/fp_0.ts", headers={"If-None-Match": fast.headers["ETag"]}).status_code == 304
    assert client.get("/fp_0.ts", headers={"If-Modified-Since": fast.headers["Last-Modified"]}).status_code == 304


def test_fmp4_segments_and_their_init_segment_never_reach_flask(app, flask_calls):
    client = app.test_client()
    playlist = client.get("/fm.media.m3u8").text
    assert '#EXT-X-MAP:URI="fm_init_0.mp4"' in playlist and "fm_0.m4s" in playlist
    folder = app.extensions["transcode_worker"].manager.get("fm").folder
    for name in ("fm_init_0.mp4", "fm_0.m4s"):
        answer = client.get(f"/{name}")
        assert answer.status_code == 200 and answer.content_type == "video/mp4", name
        assert answer.data == (folder / name).read_bytes() and answer.headers["ETag"]
    assert flask_calls == []


@pytest.mark.parametrize("path", ["/nojob_0.ts", "/nojob.m3u8", "/fp_999.ts", "/fp.txt", "/fp_0.ts/x",
                                  "/fp_0.ts%0A", "/fp.m3u8%0A", "/fp_0.m4s", "/fp_init_0.mp4", "/fm_0.ts",
                                  "/fm_init_1.mp4", "/fm_init_0.m4s", "/fp.media.m3u8x"])
def test_what_is_not_there_is_answered_by_flask(app, flask_calls, path):
    response = app.test_client().get(path)
    assert response.status_code == 404 and response.is_json
    assert len(flask_calls) == 1


def test_other_methods_go_to_flask(app, flask_calls):
    client = app.test_client()
    assert client.options("/fp_0.ts").headers["Access-Control-Allow-Origin"] == "*"
    assert client.post("/fp_0.ts").status_code == 405
    assert client.open("/fp_0.ts", method="BREW").status_code == 405
    assert flask_calls == ["/fp_0.ts"] * 3
    text = app.extensions["transcode_worker"].metrics.render().decode()
    assert 'method="other",status="405"' in text and "BREW" not in text  # made-up methods: one label
