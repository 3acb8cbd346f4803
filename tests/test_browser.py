"""Real players: hls.js, and for the failover Shaka Player and video.js too (pinned in
tests/browser/package-lock.json), in Debian's headless Chromium, driven by Selenium through
ChromeDriver. The page comes from its own origin, so every request to the
worker is a cross-origin one. Run with `make test-browser` (which installs what it needs).
"""
import functools
import json
import http.server
import signal
import threading
import time
from pathlib import Path
from urllib.parse import quote

import m3u8
import pytest
import requests
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

import media_files as mf
from orchestrator_process import OrchestratorProcess
from worker_process import ffmpeg_slow_at, free_port, kill_service, probe_duration, wait_for

pytestmark = pytest.mark.browser

PAGE_DIR = Path(__file__).parent / "browser"
SEGMENT_S = 2.0  # the test worker's segment_duration_s
CHROMIUM_FLAGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--mute-audio",
    "--autoplay-policy=no-user-gesture-required",
    # this machine's network is closed: no background calls home that fail at every start
    "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update",
    "--disable-sync",
]


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def page_url():
    """tests/browser/ served on loopback: an origin other than the worker's."""
    assert (PAGE_DIR / "node_modules/hls.js/dist/hls.min.js").exists(), "run `make test-browser`"
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", free_port()), functools.partial(QuietHandler, directory=str(PAGE_DIR)))
    thread = threading.Thread(target=server.serve_forever, name="page-server", daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/player.html"
    server.shutdown()
    server.server_close()
    thread.join(5)


class Player:
    """window.player of tests/browser/player.html, seen from the test."""

    def __init__(self, driver):
        self.driver = driver

    def load(self, url):
        self.driver.execute_script("window.player.load(arguments[0])", url)

    def state(self):
        return self.driver.execute_script("return window.player.state()")

    def wait_playing_past(self, seconds, timeout):
        """Wait until currentTime passes `seconds`; fail at once on a fatal hls.js error."""
        def past():
            state = self.state()
            assert not state["fatal"] and not state["mediaError"], state
            return state["currentTime"] > seconds and state

        return wait_for(past, timeout, interval=0.2, what=f"currentTime past {seconds}s ({self.state()})")

    def picture(self):
        """(currentTime, mean RGB level of the frame on screen), read together."""
        return self.driver.execute_script(
            "return [document.getElementById('video').currentTime, window.player.brightness()]")


@pytest.fixture
def player(page_url, tmp_path):
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in CHROMIUM_FLAGS + [f"--user-data-dir={tmp_path / 'chromium-profile'}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver"))
    try:
        driver.get(page_url)
        assert driver.execute_script("return window.player.supported()"), "no MediaSource in this Chromium"
        yield Player(driver)
    finally:
        driver.quit()  # ChromeDriver ends its Chromium, then the Service stops ChromeDriver by pid


def assert_shows_long_at(player):
    """The picture on screen is the long ramp's at currentTime: the browser paints its
    limited-range level full range (FFmpeg's gray of the source is no judge: it bends near white)."""
    current, level = player.picture()
    expected = (mf.luma_at(current) - 16) * 255 / 219
    assert abs(level - expected) <= 6, f"at {current:.1f}s of the movie: shows {level:.0f}, not {expected:.0f}"


def test_hls_js_sees_the_whole_film_at_once_jumps_ahead_and_follows_a_seek(worker, media_root, player):
    source = str(media_root / mf.LONG)
    body = {"job_id": "browser1", "source_path": source, "configuration": {"bitrate_bps": 1_000_000}}
    response = worker.post_job(body)
    assert response.status_code == 202, response.text
    url = response.json()["playlist_url"]

    player.load(url)
    player.wait_playing_past(1.0, timeout=60)
    duration = player.driver.execute_script("return document.getElementById('video').duration")
    assert abs(duration - mf.LONG_SECONDS) < 0.1, duration  # the film's length, at load
    assert worker.job("browser1")["state"] == "RUNNING", "FFmpeg should be far from the end"
    assert_shows_long_at(player)

    # the viewer jumps to 75 %: the player asks for a segment far ahead, a run starts there
    jump = 0.75 * mf.LONG_SECONDS
    player.driver.execute_script("document.getElementById('video').currentTime = arguments[0]", jump)
    player.wait_playing_past(jump + 1.0, timeout=60)
    assert_shows_long_at(player)

    # The orchestrator's seek: the same job posted again with a seek_time; the client reloads
    # and begins at the playlist's EXT-X-START, on the same clock.
    body["configuration"]["seek_time"] = "00:05:00"
    assert worker.post_job(body).status_code == 202
    player.load(url)
    player.wait_playing_past(300 + 1.0, timeout=60)
    assert player.state()["currentTime"] < 300 + 10, player.state()  # it began at the seek
    assert_shows_long_at(player)

    state = player.state()
    assert state["fatal"] == 0 and state["mediaError"] is None, state
    worker.delete("browser1")


# every source kind, as transcoded (H.264) and as remuxed (H.264 in MPEG-TS, HEVC in fMP4)
END_TO_END = [(name, remux) for name in mf.SOURCES for remux in (False, True)]


# what the player holds, said when a test waits in vain for it
PLAYER_STATE = """const v = document.getElementById('video');
const ranges = (r) => Array.from({length: r.length}, (_, i) => [r.start(i), r.end(i)]);
return JSON.stringify({time: v.currentTime, duration: v.duration, buffered: ranges(v.buffered),
                       errors: window.player.errors, audio: window.player.audio()});"""


@pytest.mark.parametrize("name, remux", END_TO_END, ids=[f"{'remux' if r else 'transcode'}-{n}" for n, r in END_TO_END])
def test_hls_js_plays_a_completed_stream_to_its_end(worker, media_root, player, name, remux):
    job_id = f"browser-end-{list(mf.SOURCES).index(name)}-{int(remux)}"
    source = str(media_root / name)
    response = worker.post_job({"job_id": job_id, "source_path": source, "configuration": {"force_remux": remux}})
    assert response.status_code == 202, response.text
    worker.wait_state(job_id, {"COMPLETED"})
    codecs = variant_codecs(response.json()["playlist_url"])
    if not player.driver.execute_script("return window.player.canPlay(arguments[0])", codecs):
        worker.delete(job_id)
        pytest.skip(f"this Chromium decodes no {codecs} (Debian's has no HEVC decoder)")
    player.load(response.json()["playlist_url"])
    ended = wait_for(lambda: player.driver.execute_script(
        "const v = document.getElementById('video'); return v.ended && [v.currentTime, v.duration]"),
        30, interval=0.2, what=f"the end of the stream ({player.driver.execute_script(PLAYER_STATE)})")
    current, duration = ended
    assert abs(duration - probe_duration(source)) < SEGMENT_S / 2 and current >= duration - 0.1, ended
    assert player.state()["fatal"] == 0
    worker.delete(job_id)


def test_hls_js_plays_on_across_a_speed_guard_step(make_worker, media_root, player, tmp_path):
    """A job held below real time steps down (speed guard) and its next run goes on from the
    first segment not made, on the same grid and clock; hls.js, playing it from the seek, shows
    the right frames after the step and plays to the end."""
    worker = make_worker(ffmpeg_path=ffmpeg_slow_at("veryfast", tmp_path), speed_guard_s=3.0,
                         encoder_preset="veryfast")
    # the last 80 s of the ramp (its brightness still below white), played at 4x
    source = str(media_root / mf.LONG)
    response = worker.post_job({"job_id": "stepped", "source_path": source,
                                "configuration": {"seek_time": "00:08:40", "bitrate_bps": 300_000}})
    assert response.status_code == 202, response.text
    url = response.json()["playlist_url"]
    player.load(url)
    player.driver.execute_script("document.getElementById('video').playbackRate = 4")
    stepped = wait_for(lambda: (worker.job("stepped")["speed_guard"] or {}).get("step"), 40,
                       what="the speed guard's step")
    assert stepped and "DISCONTINUITY" not in requests.get(url.replace(".m3u8", ".media.m3u8"), timeout=30).text
    at = player.state()["currentTime"]
    player.wait_playing_past(at + 3 * SEGMENT_S, timeout=60)
    # after the step, the right frames: the ramp's level there (the browser paints the
    # limited-range picture full range; FFmpeg's gray clips
    # this close to white)
    current, level = player.picture()
    expected = (mf.luma_at(current) - 16) * 255 / 219
    assert abs(level - expected) <= 6, f"at {current:.1f}s of the movie: shows {level:.0f}, not {expected:.0f}"
    ended = wait_for(lambda: player.driver.execute_script(
        "const v = document.getElementById('video'); return v.ended && [v.currentTime, v.duration]"),
        60, interval=0.2, what="the end of the stream")
    assert abs(ended[1] - mf.LONG_SECONDS) < SEGMENT_S / 2, ended
    assert player.state()["fatal"] == 0
    worker.delete("stepped")


def variant_codecs(url):
    return m3u8.loads(requests.get(url, timeout=30).text).playlists[0].stream_info.codecs


def test_hls_js_shows_each_cue_on_its_frames_after_a_seek_too(worker, media_root, player):
    """The film's frames tell their number by their brightness and its English track has a cue
    each second: every cue hls.js shows must be on the frames the source shows it on."""
    body = {"job_id": "browser-subs", "source_path": str(media_root / mf.SUBTITLED),
            "configuration": {"subtitle_stream": 0, "bitrate_bps": 1_000_000}}
    for seek_s in (0, 5):
        body["configuration"]["seek_time"] = f"00:00:{seek_s:02d}"
        response = worker.post_job(body)
        assert response.status_code in (200, 202), response.text
        player.load(response.json()["playlist_url"])
        seen = {}
        def watch():
            state = player.driver.execute_script("return window.player.subtitles()")
            for text in state["cues"]:
                frame = round(state["brightness"] * 219 / 255)
                seen.setdefault(text, []).append(frame)
            return len(seen) >= 3 and seen
        wait_for(watch, 40, interval=0.05, what=f"three cues shown after a seek to {seek_s}s ({seen})")
        for text, frames in seen.items():
            k = int(text.split()[1])  # "cue k": frames 20k + 2 to 20k + 13
            assert k >= seek_s
            first, last = k * mf.SUBTITLED_FPS + 2, k * mf.SUBTITLED_FPS + 13
            assert all(first - 3 <= f <= last + 3 for f in frames), (text, frames)
    assert player.state()["fatal"] == 0
    worker.delete("browser-subs")


SWITCH_WAIT_MS = 1000  # a pause a viewer would call a stall (hls.js itself calls one at 1.25 s of no progress)


def test_hls_js_lists_the_audio_tracks_and_switches_language_mid_film_without_a_stall(worker, media_root, player):
    body = {"job_id": "languages", "source_path": str(media_root / mf.RENDITIONS),
            "configuration": {"bitrate_bps": 1_000_000}}
    response = worker.post_job(body)
    assert response.status_code == 202, response.text
    player.load(response.json()["playlist_url"])
    player.wait_playing_past(1.0, timeout=60)
    audio = player.driver.execute_script("return window.player.audio()")
    assert [(t["name"], t["lang"]) for t in audio["tracks"]] == [
        ("English", "en"), ("Deutsch", "de"), ("Director's Commentary", "en"), ("English (Audio description)", "en"),
        ("English (Clear dialogue)", "en")]
    assert audio["current"] == 0 and audio["tracks"][0]["default"]
    assert audio["tracks"][3]["characteristics"] == "public.accessibility.describes-video"

    switch_at = player.wait_playing_past(SEGMENT_S * 3, timeout=60)["currentTime"]
    player.driver.execute_script("window.player.setAudioTrack(1)")
    wait_for(lambda: any(at >= switch_at for at in player.driver.execute_script("return window.player.audio()")["switched"]),
             20, what="hls.js switched to the German track")
    player.wait_playing_past(switch_at + 3 * SEGMENT_S, timeout=60)
    audio = player.driver.execute_script("return window.player.audio()")
    # the switch itself: playback went on, with German from the next segment (a wait before it,
    # while the first segments came, is start-up's, which other tests measure)
    assert audio["current"] == 1, audio
    # hls.js's switch (the audioTrack setter) drops the English it holds and waits for the German
    # segment at the playhead: at most the time a rendition's first segment takes to be made (the
    # bench's `audio` figure), never a stall a viewer would call one; a restart would be seconds
    after = [w for w in audio["waits"] if w["at"] >= switch_at - 0.5]
    assert all(w["ms"] is not None and w["ms"] < SWITCH_WAIT_MS for w in after), audio
    state = player.state()
    assert state["fatal"] == 0 and state["mediaError"] is None, state
    # the German segments were made from where the viewer was, not from the film's start
    made = sorted(int(p.stem.rpartition("_")[2]) for p in (worker.segment_root / "languages").glob("languages.audio1_*.ts"))
    assert made and made[0] > 0, made
    worker.delete("languages")


def test_hls_js_on_another_origin_plays_a_signed_play_link_and_an_unsigned_one_starts_nothing(
        make_worker, media_root, player, tmp_path):
    """A pool with a token: a page (on its own origin) is given a /play link a program minted; hls.js
    follows the orchestrator's redirect to the worker and plays. The same link unsigned is 403,
    which the page can read (CORS), and no job starts."""
    orch = OrchestratorProcess(tmp_path / "orchestrator", api_token="pool-token", seen_within_s=5.0,
                               check_interval_s=0.5).start()
    try:
        make_worker(worker_id="w1", orchestrator_url=orch.url, api_token="pool-token", heartbeat_interval_s=1.0)
        wait_for(lambda: len(orch.workers()) == 1, 20, what="the worker in the pool")
        source = str(media_root / mf.H264)
        player.load(f"{orch.url}/play?path={quote(source)}")
        wait_for(lambda: player.state()["fatal"], 20, what="hls.js giving up on the unsigned link")
        refused = player.driver.execute_async_script(
            "fetch(arguments[0]).then(r => arguments[1](r.status)).catch(e => arguments[1](String(e)))",
            f"{orch.url}/play?path={quote(source)}")
        assert refused == 403 and orch.get("/v1/jobs").json()["jobs"] == []
        player.load(orch.play_url(source))
        player.wait_playing_past(2.0, timeout=60)
        [job] = orch.get("/v1/jobs").json()["jobs"]
        orch.delete(f"/v1/jobs/{job['job_id']}")
    finally:
        orch.stop()


def watch_clock(player, until_s, timeout):
    """Sample the player's clock until it passes `until_s`; returns the longest time (s) it stood
    still while playing. Fails at once on a fatal hls.js error."""
    samples = []

    def past():
        state = player.state()
        assert not state["fatal"] and not state["mediaError"], json.dumps(state, indent=1)
        samples.append((time.monotonic(), state["currentTime"]))
        return state["currentTime"] > until_s

    wait_for(past, timeout, interval=0.1, what=f"currentTime past {until_s}s ({player.state()})")
    longest, still_since = 0.0, samples[0]
    for at, current in samples[1:]:
        if current > still_since[1]:
            still_since = (at, current)
        longest = max(longest, at - still_since[0])
    return longest


COUNTED_LONG_S = 240
COUNTED_FPS = mf.COUNTED_FPS[0] / mf.COUNTED_FPS[1]


@pytest.fixture(scope="module")
def counted_long(media_root):
    """A film whose pictures tell their frame number (tests/media_files.py make_counted)."""
    path = media_root / "counted long.mp4"
    if not path.exists():
        mf.make_counted(path, COUNTED_LONG_S, keyframes=tuple(range(0, COUNTED_LONG_S, 2)))
    return path


def assert_shows_the_frame_of_its_clock(player):
    at, number = player.driver.execute_script("return window.player.frame()")
    expected = at * COUNTED_FPS
    assert abs(number - expected) <= 3, f"at {at:.3f} s the picture is frame {number}, not {expected:.0f}"


@pytest.mark.parametrize("death", ["death note", "silent"])
@pytest.mark.parametrize("page", ["player.html", "shaka.html", "videojs.html"])
def test_a_browser_player_plays_on_from_another_worker_when_its_worker_dies(cluster, media_root, counted_long,
                                                                           player, page, death):
    """A film opened through /play, in hls.js (Content Steering), Shaka Player (through the
    orchestrator's redirects) or video.js (VHS), default settings, plays 10 s; the worker holding it is stopped
    (SIGTERM: a death note) or its whole service is SIGKILLed (silent, under the seeds'
    offline_after_s of 45 s). The player's clock goes on with no error, the picture the frame of
    its clock; then, past all it had buffered, the pictures only the other worker can have made
    are the frames of the clock too; the job names the survivor."""
    orch, workers = cluster(offline_after_s=45.0)
    if page != "player.html":
        player.driver.get(player.driver.current_url.replace("player.html", page))
        assert player.driver.execute_script("return window.player.supported()")
    # (4 Mb/s: hls.js buffers up to its 60 MB, about 110 s; Shaka 10 s)
    player.load(orch.play_url(str(counted_long), bitrate_bps=4_000_000))
    player.wait_playing_past(10.0, timeout=90)
    assert_shows_the_frame_of_its_clock(player)
    [job] = orch.get("/v1/jobs").json()["jobs"]
    holder = workers[job["worker_id"]]
    other_id = next(w for w in workers if w != job["worker_id"])
    died_at = player.state()["currentTime"]
    if death == "silent":
        kill_service(holder)
    else:
        holder.proc.send_signal(signal.SIGTERM)
    buffered = player.driver.execute_script("return window.player.bufferedEnd()")
    stall = watch_clock(player, died_at + 10, timeout=60)
    print(f"{page}, {death}: the picture stood still {stall:.2f} s at most")  # (pytest -s shows it)
    assert_shows_the_frame_of_its_clock(player)
    assert stall <= (3.0 if death == "death note" else 5.0), stall
    # past all it had buffered when the worker died: what only the other worker can have made
    beyond = buffered + 10
    assert beyond < COUNTED_LONG_S - 15, buffered
    player.driver.execute_script("window.player.seek(arguments[0])", beyond)
    watch_clock(player, beyond + 4, timeout=60)
    assert_shows_the_frame_of_its_clock(player)
    assert orch.job(job["job_id"])["worker_id"] == other_id
    assert workers[other_id].segments_served() > 0
    if death == "death note":
        holder.proc.wait(30)
