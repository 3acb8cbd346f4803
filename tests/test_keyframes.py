"""The keyframes read from a container's index are the ones ffprobe's packet scan finds, on
media real FFmpeg makes; a file without an index, or a broken or hostile one, answers None."""
import os
import shutil
import struct
import subprocess
import time

import pytest

from transcode_worker import keyframes

KEYS = "0,1,2.5,7,8,14.5"  # irregular, as scene cuts place them
VIDEO = ["-f", "lavfi", "-i", "testsrc2=size=160x90:rate=24000/1001:duration=16"]
AUDIO = ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=16"]
# B-frames (their delay is an MP4's edit list), keyframes only where forced
H264 = ["-c:v", "libx264", "-preset", "ultrafast", "-bf", "3", "-g", "1000", "-sc_threshold", "0",
        "-force_key_frames", KEYS]
VIDEO_FIRST = ["-map", "0:v"]
AUDIO_FIRST = ["-map", "1:a", "-map", "0:v", "-c:a", "aac"]


def ffmpeg(*args):
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y", *args], check=True, timeout=60)


def has_encoder(name):
    out = subprocess.run(["ffmpeg", "-hide_banner", "-encoders"], capture_output=True, text=True).stdout
    return f" {name} " in out


# name: (ffmpeg arguments after the inputs, the video's stream index)
SOURCES = {
    "h264.mkv": ([*VIDEO, *VIDEO_FIRST, *H264], 0),
    "audio first.mkv": ([*VIDEO, *AUDIO, *AUDIO_FIRST, *H264], 1),
    "h264.mp4": ([*VIDEO, *VIDEO_FIRST, *H264], 0),
    "audio first.mp4": ([*VIDEO, *AUDIO, *AUDIO_FIRST, *H264], 1),
    "faststart.mp4": ([*VIDEO, *VIDEO_FIRST, *H264, "-movflags", "+faststart"], 0),
    # an empty edit before the media: the film starts at 10 s
    "offset.mp4": ([*VIDEO, *VIDEO_FIRST, *H264, "-output_ts_offset", "10"], 0),
    "negative cts.mp4": ([*VIDEO, *VIDEO_FIRST, *H264, "-movflags", "+negative_cts_offsets"], 0),
    "vp9.webm": ([*VIDEO, *VIDEO_FIRST, "-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8",
                  "-g", "1000", "-force_key_frames", KEYS], 0),
    "hevc.mp4": ([*VIDEO, *VIDEO_FIRST, "-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "log-level=error",
                  "-g", "1000", "-force_key_frames", KEYS, "-tag:v", "hvc1"], 0),
}


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    folder = tmp_path_factory.mktemp("keyframes")
    for name, (args, _) in SOURCES.items():
        if "libx265" in args and not has_encoder("libx265"):
            continue
        ffmpeg(*args, str(folder / name))
    # a copy cut at 4 s: its edit list starts inside a GOP, whose keyframe comes before 0
    ffmpeg("-ss", "4", "-i", str(folder / "h264.mp4"), "-c", "copy", str(folder / "cut at 4s.mp4"))
    ffmpeg(*VIDEO, *H264, str(folder / "h264.ts"))
    return folder


def assert_same(found, scanned):
    assert len(found) == len(scanned), (found, scanned)
    assert all(abs(a - b) < 1e-6 for a, b in zip(found, scanned)), (found, scanned)


@pytest.mark.parametrize("name", [*SOURCES, "cut at 4s.mp4"])
def test_the_index_gives_the_keyframes_ffprobe_finds(media, name):
    path = media / name
    if not path.exists():
        pytest.skip("no libx265 in this FFmpeg")
    stream = SOURCES.get(name, (None, 0))[1]
    found = keyframes.from_index(path, stream)
    assert found is not None and found.source in ("cues", "stss")
    assert_same(found.times, keyframes.scan("ffprobe", path, stream, 30).times)
    assert len(found.times) >= 4 and list(found.times) == sorted(found.times)
    assert keyframes.read("ffprobe", path, stream, 30) == found


def test_irregular_keyframes_are_where_they_were_forced(media):
    frame = 1001 / 24000
    times = keyframes.from_index(media / "h264.mp4", 0).times
    assert [round(t / frame) for t in times] == [round(float(k) / frame) for k in KEYS.split(",")]


def test_a_stream_that_is_not_video_has_no_keyframe_index(media):
    assert keyframes.from_index(media / "audio first.mkv", 0) is None
    assert keyframes.from_index(media / "audio first.mp4", 0) is None
    assert keyframes.from_index(media / "h264.mp4", 5) is None


def test_mpeg_ts_has_no_index_so_read_scans(media):
    path = media / "h264.ts"
    assert keyframes.from_index(path, 0) is None
    found = keyframes.read("ffprobe", path, 0, 30)
    assert found.source == "scan" and len(found.times) == len(KEYS.split(","))


def test_scan_refuses_what_is_not_media(tmp_path):
    playlist = tmp_path / "film.mkv"
    playlist.write_text("#EXTM3U\n#EXTINF:10,\n../../etc/passwd\n")
    with pytest.raises(ValueError, match="HLS playlist|keyframe scan"):
        keyframes.scan("ffprobe", playlist, 0, 30)
    with pytest.raises(ValueError):
        keyframes.scan("ffprobe", tmp_path / "missing.mkv", 0, 30)
    with pytest.raises(ValueError, match="not found"):
        keyframes.scan("no-such-ffprobe", playlist, 0, 30)


def test_parse_scan_keeps_keyframes_with_a_time():
    text = "0.000000,K__\n0.041708,___\nN/A,K__\n1.001000,KD_\n\n2.5,__\n"
    assert keyframes.parse_scan(text) == (0.0, 1.001)


def broken(media, tmp_path):
    """Files that must answer None: truncated, random, hostile sizes."""
    out = {}
    for name in ("h264.mkv", "h264.mp4"):
        data = (media / name).read_bytes()
        out[f"truncated {name}"] = data[:len(data) // 2]  # Cues / moov are at the end
    faststart = (media / "faststart.mp4").read_bytes()
    moov = faststart.find(b"moov") - 4
    out["moov cut short.mp4"] = faststart[:moov + 200]
    noise = bytes((i * 7919 + 13) % 251 for i in range(200_000))
    out["random.mkv"], out["random.mp4"] = noise, noise
    ftyp = struct.pack(">I4s4sI", 16, b"ftyp", b"isom", 512)
    out["huge box.mp4"] = ftyp + struct.pack(">I4sQ", 1, b"moov", 2 ** 62) + bytes(64)
    out["huge free.mp4"] = ftyp + struct.pack(">I4s", 0xFFFFFFFF, b"free") + bytes(64)
    # a moov whose stts claims 2**32-1 entries, whose trak claims to be larger than the moov
    stts = struct.pack(">I4sII", 16, b"stts", 0, 0xFFFFFFFF)
    out["huge table.mp4"] = ftyp + struct.pack(">I4s", 8 + len(stts), b"moov") + stts
    trak = struct.pack(">I4s", 1 << 30, b"trak")
    out["huge trak.mp4"] = ftyp + struct.pack(">I4s", 8 + len(trak), b"moov") + trak
    mkv = (media / "h264.mkv").read_bytes()
    out["huge element.mkv"] = mkv[:40] + b"\x18\x53\x80\x67" + b"\x01" + b"\x7f" * 7 + bytes(64)
    # the size after the first appearance of each index element's ID (in the SeekHead or the
    # element itself) made the largest an 8-byte size can be
    hostile = bytearray(mkv)
    for element in (b"\x1c\x53\xbb\x6b", b"\x16\x54\xae\x6b", b"\x11\x4d\x9b\x74", b"\x15\x49\xa9\x66"):
        at = hostile.find(element)
        hostile[at + 4] = 0x01
        hostile[at + 5:at + 12] = b"\xff" * 7
    out["hostile sizes.mkv"] = bytes(hostile)
    paths = []
    for name, data in out.items():
        (tmp_path / name).write_bytes(data)
        paths.append(tmp_path / name)
    return paths


def test_broken_or_hostile_files_answer_none_quickly(media, tmp_path):
    for path in broken(media, tmp_path):
        started = time.monotonic()
        assert keyframes.from_index(path, 0) is None, path.name
        assert time.monotonic() - started < 0.5, path.name


def test_a_file_that_cannot_be_opened_answers_none(tmp_path):
    assert keyframes.from_index(tmp_path / "missing.mp4", 0) is None
    assert keyframes.from_index(tmp_path, 0) is None


def test_the_pure_readers_reject_overruns():
    with pytest.raises(keyframes._Malformed):
        list(keyframes.boxes(struct.pack(">I4s", 100, b"moov")))
    with pytest.raises(keyframes._Malformed):
        list(keyframes.elements(b"\x1c\x53\xbb\x6b\x88" + bytes(4)))
    assert keyframes.moov_keyframes(b"", 0) is None


@pytest.mark.skipif(not shutil.which("nice"), reason="no nice")
def test_scan_runs_behind_a_prefix(media):
    found = keyframes.scan("ffprobe", media / "h264.ts", 0, 30, prefix=["nice", "-n", "19"])
    assert found.source == "scan" and os.path.exists(media / "h264.ts")


def test_a_scan_is_kept_on_disk_for_the_same_file_only(tmp_path):
    store = keyframes.ScanStore(str(tmp_path / "keyframes"), limit=2)
    key = ("/media/a.ts", 0, 1_000, 5_000)
    assert store.get(key) is None
    store.put(key, (0.0, 2.5, 5.0))
    again = keyframes.ScanStore(str(tmp_path / "keyframes"), limit=2)  # a worker started again
    assert again.get(key) == (0.0, 2.5, 5.0)
    assert again.get(("/media/a.ts", 0, 2_000, 5_000)) is None  # the file changed since
    assert again.get(("/media/a.ts", 1, 1_000, 5_000)) is None
    # at most `limit` kept, the least recently used dropped first
    again.put(("/media/b.ts", 0, 1, 1), (0.0,))
    os.utime(again._path(key), (1, 1))
    os.utime(again._path(("/media/b.ts", 0, 1, 1)), (2, 2))
    again.get(key)  # used again: now the most recent
    again.put(("/media/c.ts", 0, 1, 1), (0.0,))
    assert again.get(key) == (0.0, 2.5, 5.0) and again.get(("/media/b.ts", 0, 1, 1)) is None
    assert len(os.listdir(tmp_path / "keyframes")) == 2


def test_a_damaged_scan_file_is_scanned_again(tmp_path):
    store = keyframes.ScanStore(str(tmp_path))
    key = ("/media/a.ts", 0, 1, 1)
    store.put(key, (0.0, 1.0))
    with open(store._path(key), "w") as fh:
        fh.write("{not json")
    assert store.get(key) is None
