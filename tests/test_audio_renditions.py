"""Every audio track a rendition (the real service, real FFmpeg, FFmpeg and m3u8 as the player):
the multivariant playlist's groups and attributes, each rendition heard as its own track, on the
video's grid and clock, made where the player asks, a switch that leaves the video's FFmpeg alone,
lip sync after a jump and a switch, and the dialogue rendition's levels."""
import itertools
import re
import subprocess
import time
from array import array
from urllib.parse import urljoin

import m3u8
import pytest
import requests

import media_files as mf

AAC_FRAME_S = 1024 / 48000


def ffmpeg_out(*args, stderr=False):
    proc = subprocess.run(["ffmpeg", "-hide_banner", "-nostdin", *args], capture_output=True, timeout=120, check=True)
    return proc.stderr.decode() if stderr else proc.stdout


def tone_hz(url, seconds=1.0):
    """The frequency of the single tone of a stream's audio, from its zero crossings."""
    raw = ffmpeg_out("-loglevel", "error", "-i", url, "-map", "0:a", "-t", str(seconds), "-ac", "1", "-ar", "48000",
                     "-f", "s16le", "-")
    samples = array("h", raw)
    crossings = sum(1 for a, b in zip(samples, samples[1:]) if (a < 0) != (b < 0))
    return crossings / 2 / (len(samples) / 48000)


def band_db(url, hz):
    """Mean volume (dB) of a stream's audio around `hz` (a narrow band-pass)."""
    text = ffmpeg_out("-loglevel", "info", "-i", url, "-map", "0:a", "-af",
                      f"bandpass=f={hz}:width_type=q:w=8,bandpass=f={hz}:width_type=q:w=8,volumedetect",
                      "-f", "null", "-", stderr=True)
    return float(re.search(r"mean_volume: (-?[\d.]+|-inf) dB", text).group(1))


def peak_db(url):
    text = ffmpeg_out("-loglevel", "info", "-i", url, "-map", "0:a", "-af", "volumedetect", "-f", "null", "-",
                      stderr=True)
    return float(re.search(r"max_volume: (-?[\d.]+|-inf) dB", text).group(1))


def start_time(url, stream):
    """The first packet's time of a stream of a segment (its own clock)."""
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", stream, "-read_intervals", "%+#5",
                          "-show_entries", "packet=pts_time", "-of", "csv=p=0", url], capture_output=True, timeout=60,
                         check=True)
    times = [line.strip(",") for line in out.stdout.decode().split()]
    return float(next(t for t in times if t != "N/A"))


@pytest.fixture
def start(worker, media_root):
    """start(job_id, name, **configuration) -> the multivariant URL; every job deleted afterwards."""
    posted = []

    def run(job_id, name, **configuration):
        posted.append(job_id)
        answer = worker.post_job({"job_id": job_id, "source_path": str(media_root / name),
                                  "configuration": configuration})
        assert answer.status_code in (200, 202), answer.text
        return f"{worker.url}/{job_id}.m3u8"

    yield run
    for job_id in posted:
        worker.delete(job_id)


def renditions(url):
    """{group id: [m3u8 Media]} of a multivariant playlist, and its variants."""
    parsed = m3u8.loads(requests.get(url, timeout=30).text, uri=url)
    groups = {}
    for media in parsed.media:
        if media.type == "AUDIO":
            groups.setdefault(media.group_id, []).append(media)
    return groups, parsed.playlists


def rendition_url(url, media):
    return urljoin(url, media.uri)


def fetch(url):
    answer = requests.get(url, timeout=30)
    assert answer.status_code == 200, (url, answer.status_code, answer.text[:300])
    return answer.content


def segment_url(playlist_url, number):
    parsed = m3u8.loads(requests.get(playlist_url, timeout=30).text, uri=playlist_url)
    return urljoin(playlist_url, parsed.segments[number].uri), parsed


def test_every_track_is_a_rendition_with_what_a_player_needs_to_choose(start):
    url = start("groups", mf.RENDITIONS)
    groups, variants = renditions(url)
    stereo = groups["stereo"]
    described = [(m.name, m.language, m.default, m.autoselect, m.characteristics, m.channels) for m in stereo]
    assert described == [
        ("English", "en", "YES", "YES", None, "2"),
        ("Deutsch", "de", "NO", "YES", None, "2"),
        ("Director's Commentary", "en", "NO", "NO", None, "2"),  # never chosen by its language alone
        ("English (Audio description)", "en", "NO", "YES", "public.accessibility.describes-video", "2"),
        ("English (Clear dialogue)", "en", "NO", "YES", "public.accessibility.enhances-speech-intelligibility", "2"),
    ]
    # the 5.1 AC-3 copied in a group of its own, beside the others' stereo
    assert [(m.name, m.channels) for m in groups["ac3"]] == [
        ("English", "6"), ("Deutsch", "2"), ("Director's Commentary", "2"), ("English (Audio description)", "2"),
        ("English (Clear dialogue)", "2")]
    assert groups["ac3"][1].uri == stereo[1].uri  # one playlist, two groups
    # one variant per group, stereo first; each names its group and its audio codecs
    assert [v.stream_info.audio for v in variants] == ["stereo", "ac3"]
    assert variants[0].stream_info.codecs.split(",")[1:] == ["mp4a.40.2"]
    assert variants[1].stream_info.codecs.split(",")[1:] == ["ac-3", "mp4a.40.2"]
    assert variants[1].stream_info.bandwidth > variants[0].stream_info.bandwidth
    assert variants[0].uri == variants[1].uri  # the same video


def test_each_rendition_is_its_own_track_and_the_video_has_none(start):
    url = start("heard", mf.RENDITIONS)
    groups, variants = renditions(url)
    video_segment, _ = segment_url(urljoin(url, variants[0].uri), 0)
    streams = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=codec_type", "-of", "csv=p=0",
                              video_segment], capture_output=True, timeout=60, check=True).stdout.decode().split()
    assert set(streams) == {"video"}  # (MPEG-TS lists its program's streams twice)
    for media in groups["stereo"][1:4]:
        stream = [s for s, m in enumerate(groups["stereo"]) if m is media][0]
        assert tone_hz(rendition_url(url, media)) == pytest.approx(mf.RENDITION_TONES[stream], rel=0.02)
    english = rendition_url(url, groups["stereo"][0])  # the 5.1 folded down: its dialogue above its music
    assert band_db(english, mf.DIALOGUE_HZ) > band_db(english, mf.MUSIC_HZ)


def test_a_rendition_segment_covers_the_video_segment_of_its_number(start):
    url = start("grid", mf.RENDITIONS)
    groups, variants = renditions(url)
    video_playlist = urljoin(url, variants[0].uri)
    audio_playlist = rendition_url(url, groups["stereo"][1])
    video_list = m3u8.loads(requests.get(video_playlist, timeout=30).text)
    audio_list = m3u8.loads(requests.get(audio_playlist, timeout=30).text)
    assert [s.duration for s in audio_list.segments] == [s.duration for s in video_list.segments]
    assert audio_list.is_endlist and audio_list.playlist_type == "vod"
    for number in (3, 1):  # asked ahead first: made there, by a run of its own
        video, _ = segment_url(video_playlist, number)
        audio, _ = segment_url(audio_playlist, number)
        assert abs(start_time(audio, "a") - start_time(video, "v")) <= AAC_FRAME_S + 1e-3, number


def test_runs_of_a_rendition_join_without_a_gap(worker, start):
    """A run started at segment 6 for a player's request, then one at 5 for the segment before:
    the later run's AAC starts with its encoder's priming (one frame) at the boundary, so the two
    overlap by less than two frames and never leave a gap."""
    url = start("join", mf.RENDITIONS)
    german = rendition_url(url, renditions(url)[0]["stereo"][1])
    later_url, _ = segment_url(german, 6)
    later = requests.get(later_url, timeout=30).content
    earlier_url, _ = segment_url(german, 5)
    earlier = requests.get(earlier_url, timeout=30).content
    (_, earlier_end, frame), (later_start, _, _) = audio_span(earlier), audio_span(later)
    assert -2 * frame - 1e-3 <= later_start - earlier_end <= 1e-3, (earlier_end, later_start, frame)
    assert worker.job("join")["restarts"] == 0  # the video's runs: none for the sound


def audio_span(data):
    """(first packet's start, last packet's end, a packet's length) of a segment, in seconds."""
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "a", "-show_entries",
                          "packet=pts_time,duration_time", "-of", "csv=p=0", "-"], input=data,
                         capture_output=True, check=True, timeout=60).stdout
    # (read from a pipe, ffprobe may not tell the last packets' times: N/A; an AAC packet is 1024 samples)
    packets = [[float(v) if v != "N/A" else None for v in line.strip(",").split(",")[:2]]
               for line in out.decode().split()]
    packets = [(pts, duration or AAC_FRAME_S) for pts, duration in packets if pts is not None]
    return packets[0][0], packets[-1][0] + packets[-1][1], packets[-1][1]


def test_a_switch_makes_the_new_track_where_the_player_is_and_leaves_the_video_alone(worker, start):
    url = start("switch", mf.RENDITIONS)
    groups, variants = renditions(url)
    video_playlist = urljoin(url, variants[0].uri)
    segment_url(video_playlist, 2)  # the player is at segment 2 ...
    english = rendition_url(url, groups["stereo"][0])
    segment_url(english, 2)
    video_pid = worker.job("switch")["pid"]
    german = rendition_url(url, groups["stereo"][1])
    asked = time.monotonic()
    german_segment, _ = segment_url(german, 2)  # ... and switches to German there
    assert requests.get(german_segment, timeout=30).status_code == 200
    assert time.monotonic() - asked < 10
    assert worker.job("switch")["pid"] == video_pid
    # made from the player's position: nothing of the German track before it
    folder = worker.segment_root / "switch"
    assert not list(folder.glob("switch.audio1_0.*")) and not list(folder.glob("switch.audio1_1.*"))


def test_a_new_audio_choice_changes_the_default_and_does_not_restart_the_video(worker, start, media_root):
    url = start("choice", mf.RENDITIONS)
    segment_url(urljoin(url, renditions(url)[1][0].uri), 0)
    before = worker.job("choice")
    answer = worker.post_job({"job_id": "choice", "source_path": str(media_root / mf.RENDITIONS),
                              "configuration": {"audio_language": "de"}})
    assert answer.status_code == 202
    after = answer.json()
    assert after["video_restarted"] is False and after["restarts"] == before["restarts"]
    assert after["tracks"]["audio"]["title"] == "Deutsch" and after["tracks"]["audio"]["rendition"] == "audio1"
    assert worker.job("choice")["pid"] == before["pid"]
    groups, _ = renditions(url)
    assert [m.name for m in groups["stereo"] if m.default == "YES"] == ["Deutsch"]
    # the German track has no centre: no dialogue rendition offered
    assert all("speech" not in (m.characteristics or "") for m in groups["stereo"])


def test_a_silent_source_has_no_audio_group(start):
    url = start("silent", "silent 無音.mp4")
    groups, variants = renditions(url)
    assert groups == {} and len(variants) == 1 and variants[0].stream_info.audio is None
    assert requests.get(url.replace(".m3u8", ".audio0.m3u8"), timeout=30).status_code == 404


def test_dialogue_rendition_raises_the_centre_against_the_fronts_and_does_not_clip(start):
    url = start("dialogue", mf.RENDITIONS)
    groups, _ = renditions(url)
    normal = rendition_url(url, groups["stereo"][0])
    dialogue = rendition_url(url, groups["stereo"][4])
    normal_gap = band_db(normal, mf.DIALOGUE_HZ) - band_db(normal, mf.MUSIC_HZ)
    dialogue_gap = band_db(dialogue, mf.DIALOGUE_HZ) - band_db(dialogue, mf.MUSIC_HZ)
    assert dialogue_gap - normal_gap >= 6.0, (normal_gap, dialogue_gap)
    assert peak_db(dialogue) < 0.0


def test_the_remux_offers_the_same_renditions_and_copies_the_video(start):
    url = start("remux", mf.RENDITIONS, force_remux=True)
    groups, variants = renditions(url)
    assert [m.name for m in groups["stereo"]][:4] == ["English", "Deutsch", "Director's Commentary",
                                                      "English (Audio description)"]
    german = rendition_url(url, groups["stereo"][1])
    assert tone_hz(german) == pytest.approx(mf.RENDITION_TONES[1], rel=0.02)
    copied = rendition_url(url, groups["ac3"][0])
    segment, _ = segment_url(copied, 0)
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=codec_name,channels", "-of", "csv=p=0",
                          segment], capture_output=True, timeout=60, check=True).stdout.decode().split()
    assert set(out) == {"ac3,6"}


def codec_of(media_url, number=0):
    """(codec, channels) of segment `number` of a media playlist (its init segment first, in fMP4)."""
    segment, parsed = segment_url(media_url, number)
    data = requests.get(segment, timeout=30).content
    if parsed.segment_map:
        data = requests.get(urljoin(media_url, parsed.segment_map[0].uri), timeout=30).content + data
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=codec_name,channels", "-of", "csv=p=0",
                          "-"], input=data, capture_output=True, timeout=60, check=True).stdout.decode().split()
    return {line.strip(",") for line in out}  # (MP4 adds an empty field)


@pytest.mark.parametrize("name, remux, expected", [
    # E-AC-3 copied, and made AC-3 for receivers that only decode that
    (mf.EAC3, False, {"eac3": {"eac3,6"}, "ac3": {"ac3,6"}}),
    # FLAC 5.1: AAC 5.1
    (mf.DOWNMIX["flac"], False, {"aac-surround": {"aac,6"}}),
    # HEVC in fMP4: AC-3 copied there too, and the stereo AAC beside it
    ("hevc 10bit ac3 5.1 ñandú.mkv", True, {"ac3": {"ac3,6"}, "stereo": {"aac,2"}}),
])
def test_surround_renditions_are_what_their_group_says(start, name, remux, expected):
    url = start("surround", name, force_remux=remux)
    groups, variants = renditions(url)
    assert [v.stream_info.audio for v in variants][0] == "stereo"
    for group, found in expected.items():
        assert codec_of(rendition_url(url, groups[group][0])) == found, group


def test_a_film_of_one_segment_has_its_whole_sound_in_it(start, media_root):
    """A remux whose only keyframe is its first is one segment: its renditions' one segment holds
    the whole sound (the muxer's own cut every 2 s once left one packet in it, and hls.js played
    nothing)."""
    url = start("whole", "dts multi-audio subs.mkv", force_remux=True)
    groups, _ = renditions(url)
    segment, parsed = segment_url(rendition_url(url, groups["stereo"][1]), 0)
    assert len(parsed.segments) == 1
    _, end, frame = audio_span(requests.get(segment, timeout=30).content)
    begin = start_time(segment, "a")
    assert end - begin >= parsed.segments[0].duration - 2 * frame, (begin, end)


def test_a_track_that_starts_late_is_silence_on_the_grid_until_it_does(start):
    """A track whose first sound is 4 s into the film: its rendition's segments still cover their
    spans of the grid (silence until the track starts). Before, the muxer cut at every packet
    until the track caught up: segments 0 to 2 held one packet each, at 4 s."""
    url = start("late", mf.LATE_TRACK)
    late = rendition_url(url, renditions(url)[0]["stereo"][1])
    _, parsed = segment_url(late, 0)
    for number in range(len(parsed.segments)):
        segment, _ = segment_url(late, number)
        begin, end, frame = audio_span(fetch(segment))
        boundary = sum(s.duration for s in parsed.segments[:number])
        clock = 10.0 + 1.4  # grid.CLOCK_S and the MPEG-TS muxer's delay
        assert abs(begin - clock - boundary) <= frame + 1e-3, (number, begin, boundary)
        assert end - begin >= parsed.segments[number].duration - frame, (number, begin, end)
    ends = list(itertools.accumulate(s.duration for s in parsed.segments))
    after, _ = segment_url(late, next(n for n, end in enumerate(ends) if end > mf.LATE_S + 2))
    assert tone_hz(after) == pytest.approx(660, rel=0.02)  # the track sounds there


# -- lip sync --------------------------------------------------------------------------------
def flash_times(url):
    """Timestamps of the white frames of a video segment (its own clock)."""
    text = ffmpeg_out("-loglevel", "error", "-copyts", "-i", url, "-map", "0:v", "-vf",
                      "signalstats,metadata=print:key=lavfi.signalstats.YAVG:file=-", "-f", "null", "-").decode()
    times, last = [], None
    for line in text.splitlines():
        if line.startswith("frame:"):
            last = float(re.search(r"pts_time:([\d.]+)", line).group(1))
        elif "YAVG" in line and float(line.split("=")[1]) > 128:
            times.append(last)
    return times


def beep_onsets(url):
    """Times where a beep starts in an audio segment (its own clock), to the sample."""
    begin = start_time(url, "a")
    raw = ffmpeg_out("-loglevel", "error", "-i", url, "-map", "0:a", "-ac", "1", "-ar", "48000", "-f", "s16le", "-")
    samples = array("h", raw)
    onsets, quiet = [], 480
    for i, value in enumerate(samples):
        if abs(value) > 3000:
            if quiet >= 480:
                onsets.append(begin + i / 48000)
            quiet = 0
        else:
            quiet += 1
    return onsets


def test_lip_sync_holds_after_a_jump_and_a_switch(start):
    url = start("sync", mf.FLASH_BEEP, bitrate_bps=1_000_000)
    groups, variants = renditions(url)
    video_playlist = urljoin(url, variants[0].uri)
    _, parsed = segment_url(video_playlist, 0)
    flashing = [n for n, s in enumerate(parsed.segments) if n > 0]
    frame_s = 1 / 25
    checked = 0
    for media in (groups["stereo"][0], groups["stereo"][1]):  # English, then a switch to French
        audio_playlist = rendition_url(url, media)
        for number in reversed(flashing):  # a jump to the end first, then back
            video, _ = segment_url(video_playlist, number)
            audio, _ = segment_url(audio_playlist, number)
            flashes, beeps = flash_times(video), beep_onsets(audio)
            for flash in flashes:
                beep = min(beeps, key=lambda b: abs(b - flash), default=None)
                assert beep is not None and abs(beep - flash) <= frame_s, (number, flashes, beeps)
                checked += 1
    assert checked >= 6
