"""A file's own words cannot write into what the worker serves or logs (issue 25).

Whoever made a film chose its tracks' tags. Here they hold quotes, CR, LF, whole playlist lines
(``#EXT-X-STREAM-INF`` and ``http://evil.example/p.m3u8``), bidi overrides and long text, on
every kind of track, and every playlist must hold exactly its own lines:
- the entry (media.parse_probe) and the exit (multivariant's quoting), by tables;
- a fuzz of the metadata path with hypothesis: ffprobe reports -> parse_probe -> the playlist
  writers, in-process for many examples, then a few real files through real ffprobe;
- a hostile film played by the real service: its playlists fetched over HTTP, and its log.

Matroska keeps a hostile tag as it is (FFmpeg 5.1's muxer writes language and title verbatim,
which test_matroska_keeps_the_hostile_tags checks); MPEG-TS and MP4 as FFmpeg writes them keep
neither (a language is a 3-letter ISO 639 code there, else none or "und"; a title is dropped).
"""
import dataclasses
import itertools
import json
import re
import subprocess
import unicodedata

import m3u8
import pytest
import requests
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from specs import hls_output, job_spec
from transcode_worker import hls_names, media, multivariant, tracks, untrusted
from transcode_worker.media import SubtitleStream
from worker_process import WorkerProcess, wait_for

EVIL_LINES = "#EXT-X-STREAM-INF:BANDWIDTH=1\nhttp://evil.example/p.m3u8"
HOSTILE_LANGUAGE = f'en"\n{EVIL_LINES}\n#X="'
HOSTILE_TITLE = "Evil\r#EXT-X-STREAM-INF:BANDWIDTH=1\rhttp://evil.example/p.m3u8\r"
QUOTED_TITLE = f'Quote"\n{EVIL_LINES}\n#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="subs",NAME="x",URI="s.m3u8'
BIDI_TITLE = "\u202eevil.m3u8\u202c \u05e9\u05dc\u05d5\u05dd\u200f 2"  # an override; Hebrew with its RLM
# a log line as the text format writes it: a file name that holds one must not start a line
FORGED_LOG = "2030-01-01 00:00:00,000 [1] [ERROR] forged: the worker is compromised"

# -- an independent reader of RFC 8216 attribute lists (4.2) ----------------------------------
_VALUE = r'"[^"\r\n]*"|[^",\s]+'
_ATTRIBUTE_LIST = re.compile(rf"[A-Z0-9-]+=(?:{_VALUE})(?:,[A-Z0-9-]+=(?:{_VALUE}))*")
# RFC 5646's shape of a tag: letters first, then subtags of letters and digits
_LANGUAGE_SHAPE = re.compile(r"[A-Za-z]{1,8}(?:-[A-Za-z0-9]{1,8})*")
MEDIA_ATTRIBUTES = {"TYPE", "GROUP-ID", "NAME", "LANGUAGE", "DEFAULT", "AUTOSELECT", "FORCED", "URI"}
VARIANT_ATTRIBUTES = {"BANDWIDTH", "AVERAGE-BANDWIDTH", "CODECS", "RESOLUTION", "FRAME-RATE", "VIDEO-RANGE",
                      "AUDIO", "SUBTITLES"}


def attributes(line, tag):
    """{name: value as written} of a tag line whose attribute list is well-formed, else a failure."""
    assert line.startswith(tag + ":"), line
    body = line[len(tag) + 1:]
    assert _ATTRIBUTE_LIST.fullmatch(body), f"not an attribute list: {line!r}"
    return {m.group(1): m.group(2) for m in re.finditer(rf"([A-Z0-9-]+)=({_VALUE})(?:,|$)", body)}


def lines_of(text):
    """The lines of a playlist, where every reader agrees they are (LF; Python's splitlines, as
    the m3u8 package reads, also breaks on CR, VT, FF, FS, GS, RS, NEL, U+2028 and U+2029)."""
    assert text.endswith("\n"), text
    lines = text[:-1].split("\n")
    assert text.splitlines() == lines, f"a character some reader takes for a line end: {text!r}"
    text.encode("utf-8")  # served as UTF-8: nothing that has no encoding (an unpaired surrogate)
    return lines


def check_multivariant(text, job_id, subtitle_streams):
    """Exactly the playlist's own lines: its header, one EXT-X-MEDIA per audio rendition (an
    AUDIO group's, a unique NAME in its group, a LANGUAGE that is a tag, its own URI) and per text
    subtitle track (its own URI, a unique NAME, a LANGUAGE only when it is a tag), then each
    variant and its URI."""
    lines = lines_of(text)
    n = len(subtitle_streams)
    assert lines[0] == "#EXTM3U" and lines[1] in ("#EXT-X-VERSION:3", "#EXT-X-VERSION:7"), text
    assert lines[2] == "#EXT-X-INDEPENDENT-SEGMENTS", text
    media = list(itertools.takewhile(lambda line: not line.startswith("#EXT-X-STREAM-INF:"), lines[3:]))
    variants = lines[3 + len(media):]
    assert variants and len(variants) % 2 == 0, text
    entries = [attributes(line, "#EXT-X-MEDIA") for line in media]
    heard = [e for e in entries if e.get("TYPE") == "AUDIO"]
    renditions = entries[len(heard):]
    assert len(renditions) == n, text
    for entry in heard:
        assert set(entry) <= MEDIA_ATTRIBUTES | {"CHANNELS", "CHARACTERISTICS"}, entry
        assert _LANGUAGE_SHAPE.fullmatch(entry["LANGUAGE"][1:-1]), entry
        assert hls_names.AUDIO_PLAYLIST.fullmatch(entry["URI"][1:-1]).group(1) == job_id, entry
    for group in {e["GROUP-ID"] for e in heard}:
        names = [e["NAME"] for e in heard if e["GROUP-ID"] == group]
        assert len(set(names)) == len(names), heard
    for rendition in renditions:
        assert set(rendition) <= MEDIA_ATTRIBUTES and rendition["TYPE"] == "SUBTITLES", rendition
        assert rendition["GROUP-ID"] == '"subs"', rendition
        assert "LANGUAGE" not in rendition or _LANGUAGE_SHAPE.fullmatch(rendition["LANGUAGE"][1:-1]), rendition
    assert [r["URI"] for r in renditions] == [f'"{hls_names.subtitle_playlist(job_id, k)}"' for k in subtitle_streams]
    assert len({r["NAME"] for r in renditions}) == n, renditions
    for line, uri in zip(variants[::2], variants[1::2]):
        variant = attributes(line, "#EXT-X-STREAM-INF")
        assert set(variant) <= VARIANT_ATTRIBUTES and uri == hls_names.media_playlist(job_id), text
    # and as a player's library reads it
    playlist = m3u8.loads(text)
    assert playlist.is_variant and {p.uri for p in playlist.playlists} == {hls_names.media_playlist(job_id)}
    assert [m.uri for m in playlist.media][len(heard):] == [hls_names.subtitle_playlist(job_id, k)
                                                             for k in subtitle_streams]
    assert all(m.type in ("AUDIO", "SUBTITLES") and not m.extras for m in playlist.media)
    return renditions


def check_entry(info):
    """What media.py keeps of a file's words: languages that are tags, titles without control
    characters, line breaks or bidi overrides and bounded, FFmpeg's names that look like names."""
    for track in (*info.audio, *info.subtitles):
        assert track.language is None or _LANGUAGE_SHAPE.fullmatch(track.language), track
        title = track.title
        assert title is None or (0 < len(title) <= untrusted.TITLE_MAX_CHARS and title == title.strip()), track
        assert not any(unicodedata.category(c) in ("Cc", "Cs", "Zl", "Zp") or c in untrusted.BIDI_CONTROLS
                       for c in title or ""), track
        assert re.fullmatch(r"[\w .:,+()/&@-]+", track.codec, re.ASCII), track
        # an error message that lists the track is one line
        assert tracks.describe(track, ()).splitlines() == [tracks.describe(track, ())]
    video = info.video
    for name in (video.codec, video.profile, video.pix_fmt, video.color_transfer, video.color_primaries,
                 video.color_space, video.color_range, info.format_name, *(a.layout for a in info.audio)):
        assert name is None or re.fullmatch(r"[\w .:,+()/&@-]*", name, re.ASCII), name


def multivariant_of(info, job_id="j1", fmp4=False):
    text_tracks = [s for s in info.subtitles if s.text]
    spec = job_spec(job_id=job_id, media=info, subtitle=text_tracks[0] if text_tracks else None)
    text = multivariant.playlist_text(spec, hls_output(job_id, 4.0, fmp4=fmp4), ["avc1.64001f"],
                                      subtitles=True)
    return text, [s.stream for s in text_tracks]


def report(video_tags=None, audio=(), subtitles=(), **video):
    """An ffprobe report: `audio` and `subtitles` are lists of stream dicts."""
    streams = [{"index": 0, "codec_type": "video", "codec_name": "h264", "profile": "High", "width": 1280,
                "height": 720, "pix_fmt": "yuv420p", "avg_frame_rate": "25/1", "tags": video_tags or {}, **video}]
    for kind, stream in [("audio", a) for a in audio] + [("subtitle", s) for s in subtitles]:
        streams.append({"index": len(streams), "codec_type": kind, **stream})
    return {"format": {"duration": "60.0", "format_name": "matroska,webm", "bit_rate": "3000000"}, "streams": streams}


# -- the entry ----------------------------------------------------------------------------------
@pytest.mark.parametrize("tag, code", [
    ("de", "deu"), ("GER", "deu"), ("fre", "fra"), ("qaa", "qaa"), ("und", None), (None, None), (3, None),
    ("pt-BR", "pt-br"), ("zh-Hant-TW", "zh-hant-tw"), ("sr-Latn-RS", "sr-latn-rs"), ("de-CH-1996", "de-ch-1996"),
    ("x-klingon", "x-klingon"), ("i-klingon", "i-klingon"), ("en-a-bbb-x-a-ccc", "en-a-bbb-x-a-ccc"),
    (" en ", "eng"),
    (HOSTILE_LANGUAGE, None), ('en"', None), ("en\r", "eng"), ("e\nn", None), ("en-", None), ("en--us", None),
    ("toolongprimary", None), ("en-x", None), ("\u212aor", None),  # the Kelvin sign is not a "k"
    ("aa" + "-abcdefgh" * 8, None),  # well-formed, but longer than any tag a film carries
])
def test_a_language_is_kept_only_when_it_is_a_language_tag(tag, code):
    assert media.language_code(tag) == code


@pytest.mark.parametrize("title, kept", [
    (HOSTILE_TITLE, "Evil #EXT-X-STREAM-INF:BANDWIDTH=1 http://evil.example/p.m3u8"),
    ("Part 1\n\tThe Return", "Part 1 The Return"),
    ("a\x00b\x1b[31mc\x7fd\x85e\u2028f\u2029g", "ab[31mcd e f g"),
    (BIDI_TITLE, "evil.m3u8 \u05e9\u05dc\u05d5\u05dd\u200f 2"),  # the override goes, the RLM stays
    ("\u0627\u0644\u0639\u0631\u0628\u064a\u0629\u061c (5.1)", "\u0627\u0644\u0639\u0631\u0628\u064a\u0629\u061c (5.1)"),
    ("\U0001f3f4\u200d\u2620\ufe0f Pirates", "\U0001f3f4\u200d\u2620\ufe0f Pirates"),  # ZWJ sequences stay
    ("x\ud800y", "xy"), (" \r\n ", None), ("", None), (None, None), (["a list"], None),
    ("long " * 100, ("long " * 40).strip()),
])
def test_a_title_loses_control_characters_and_bidi_overrides_and_is_bounded(title, kept):
    info = media.parse_probe(report(subtitles=[{"codec_name": "subrip", "tags": {"title": title}}]))
    assert info.subtitles[0].title == kept


def test_ffmpeg_names_that_are_not_names_are_not_believed():
    hostile = "h264\n#EXT-X-STREAM-INF:BANDWIDTH=1"
    info = media.parse_probe(report(
        audio=[{"codec_name": "aac\r", "channel_layout": '5.1"(side)', "channels": 6},
               {"codec_name": "dts", "profile": "DTS-HD MA + DTS:X", "channel_layout": "3 channels (FL+FR+LFE)"}],
        subtitles=[{"codec_name": hostile}], codec_name=hostile, profile="Main\x1b", pix_fmt="yuv420p\u2028",
        color_transfer="smpte2084\n", color_primaries="bt2020", color_space="bt2020nc"))
    assert (info.video.codec, info.video.profile, info.video.pix_fmt) == ("unknown", None, None)
    assert (info.video.color_transfer, info.video.hdr, info.video.color_primaries) == (None, "SDR", "bt2020")
    assert [(a.codec, a.layout) for a in info.audio] == [("unknown", None), ("dts", "3 channels (FL+FR+LFE)")]
    assert (info.subtitles[0].codec, info.subtitles[0].text) == ("unknown", False)
    assert info.format_name == "matroska,webm"


# -- the exit -----------------------------------------------------------------------------------
@pytest.mark.parametrize("text, quoted", [
    ('a"b', "\"a'b\""), ("a\rb\nc", '"a b c"'), ("a\u2028b\x85c\x0bd", '"a b c d"'), ("x\ud800", '"x\ufffd"'),
    ("Français (forcé), 2", '"Français (forcé), 2"'),
])
def test_an_hls_quoted_string_has_no_quote_and_no_line_end(text, quoted):
    assert untrusted.hls_quoted(text) == quoted


def test_a_string_that_got_past_the_entry_still_cannot_break_a_line():
    """SubtitleStreams made directly, as a probe cache from before the fix holds them."""
    subtitles = (SubtitleStream(0, 1, "subrip", language=HOSTILE_LANGUAGE, title=HOSTILE_TITLE),
                 SubtitleStream(1, 2, "subrip", language="de\r", title=QUOTED_TITLE),
                 SubtitleStream(2, 3, "subrip", title='A"B'), SubtitleStream(3, 4, "subrip", title="A'B"))
    info = dataclasses.replace(media.parse_probe(report()), subtitles=subtitles)
    text, streams = multivariant_of(info)
    renditions = check_multivariant(text, "j1", streams)
    assert [r.get("LANGUAGE") for r in renditions] == [None, None, None, None]
    assert [r["NAME"] for r in renditions][2:] == ["\"A'B\"", "\"A'B (3)\""]  # one NAME as written: made unique


def test_the_hostile_tags_of_every_track_give_the_playlist_its_own_lines():
    tags = {"language": HOSTILE_LANGUAGE, "title": HOSTILE_TITLE}
    info = media.parse_probe(report(
        video_tags=tags, audio=[{"codec_name": "aac", "channels": 2, "tags": tags}],
        subtitles=[{"codec_name": "subrip", "tags": tags}, {"codec_name": "ass", "tags": {"title": QUOTED_TITLE}},
                   {"codec_name": "webvtt", "tags": {"language": "pt-BR", "title": BIDI_TITLE}}]))
    check_entry(info)
    text, streams = multivariant_of(info)
    renditions = check_multivariant(text, "j1", streams)
    assert [r.get("LANGUAGE") for r in renditions] == [None, None, '"pt-br"']
    assert renditions[0]["NAME"] == '"Evil #EXT-X-STREAM-INF:BANDWIDTH=1 http://evil.example/p.m3u8"'


# -- the fuzz -----------------------------------------------------------------------------------
NASTY = ['"', "'", "\r", "\n", "\r\n", ",", "=", "#", "#EXT-X-STREAM-INF:BANDWIDTH=1", "http://evil.example/p.m3u8",
         "#EXT-X-ENDLIST", "-->", "\x0b", "\x0c", "\x1c", "\x1e", "\x85", "\u2028", "\u2029", "\x1b[2J", "\x7f",
         "\u202e", "\u202d", "\u2066", "\u2069", "\u200e", "\u200f", "\u061c", "\u200d", "\ufeff", "\u0301",
         "\U0001f600", "\u05e9\u05dc\u05d5\u05dd", "\u0627\u0644\u0639", "\u4e2d\u6587", "de", "en-US", "und"]
LANGUAGES = ["de", "ger", "deu", "en", "eng", "fre", "pt-BR", "zh-Hant-TW", "qaa", "x-klingon", "i-klingon", "und",
             "xx", "", " en ", "EN"]


def tag_values(argv=False):
    """What a file's maker may write in a tag: pieces of playlist syntax, line ends of every kind,
    control and bidi characters, text of any script; short, or longer than a title is kept.
    `argv`: only what an FFmpeg command line can carry (no NUL, no unpaired surrogate)."""
    alphabet = st.characters(codec="utf-8", exclude_characters="\x00")  # no NUL, no surrogate
    pieces = NASTY if argv else [*NASTY, "\x00", "\ud800", "\udfff"]
    piece = st.one_of(st.sampled_from(pieces), st.text(alphabet, max_size=12))
    short = st.lists(piece, max_size=10).map("".join)
    long = st.text(alphabet, min_size=untrusted.TITLE_MAX_CHARS - 5, max_size=600)
    return st.one_of(short, st.sampled_from(LANGUAGES), long)


def track_tags(argv=False):
    values = tag_values(argv)
    return st.fixed_dictionaries({}, optional={"language": values, "title": values})


FFMPEG_NAMES = st.one_of(st.sampled_from(["h264", "hevc", "aac", "subrip", "ass", "webvtt", "mov_text",
                                          "hdmv_pgs_subtitle", "5.1(side)", "High 4:4:4 Predictive"]),
                         tag_values())


@st.composite
def probe_reports(draw):
    """An ffprobe report with a video, up to 3 audio and up to 5 subtitle tracks, every tag and
    every name of FFmpeg's drawn from tag_values()."""
    subtitle_codecs = st.one_of(st.sampled_from(["subrip", "ass", "webvtt", "mov_text", "hdmv_pgs_subtitle"]),
                                FFMPEG_NAMES)
    audio = [{"codec_name": draw(FFMPEG_NAMES), "channels": 2, "channel_layout": draw(FFMPEG_NAMES),
              "tags": draw(track_tags()), "disposition": {"default": draw(st.integers(0, 1))}}
             for _ in range(draw(st.integers(0, 3)))]
    subtitles = [{"codec_name": draw(subtitle_codecs), "tags": draw(track_tags()),
                  "disposition": {"forced": draw(st.integers(0, 1)), "default": draw(st.integers(0, 1))}}
                 for _ in range(draw(st.integers(0, 5)))]
    return report(draw(track_tags()), audio, subtitles, codec_name=draw(FFMPEG_NAMES), profile=draw(FFMPEG_NAMES),
                  pix_fmt=draw(FFMPEG_NAMES), color_transfer=draw(FFMPEG_NAMES))


@settings(max_examples=400, deadline=None, database=None)
@given(probe_reports(), st.booleans())
def test_fuzz_every_tag_on_every_track_leaves_the_playlist_its_own_lines(raw, fmp4):
    info = media.parse_probe(raw)
    check_entry(info)
    text, streams = multivariant_of(info, fmp4=fmp4)
    check_multivariant(text, "j1", streams)
    json.dumps(media.info_to_dict(info))  # GET /v1/media and the probe cache


@settings(max_examples=300, deadline=None, database=None)
@given(st.lists(st.tuples(tag_values(), tag_values()), min_size=1, max_size=5))
def test_fuzz_the_exit_alone_keeps_its_lines(tags):
    """Whatever a SubtitleStream holds (no entry in between), each is one line."""
    subtitles = tuple(SubtitleStream(n, n + 1, "subrip", language=language, title=title)
                      for n, (language, title) in enumerate(tags))
    info = dataclasses.replace(media.parse_probe(report()), subtitles=subtitles)
    text, streams = multivariant_of(info)
    check_multivariant(text, "j1", streams)


def tagged_film(path, tags, seconds=0.4, size="64x48"):
    """A Matroska film whose video, audio and two subtitle tracks carry `tags` (one dict each)."""
    srt = path.with_suffix(".srt")
    srt.write_text("1\n00:00:00,100 --> 00:00:00,300\nHello\n", encoding="utf-8")
    argv = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
            "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=10:duration={seconds}",
            "-f", "lavfi", "-i", f"sine=sample_rate=48000:duration={seconds}", "-i", str(srt),
            "-map", "0:v", "-map", "1:a", "-map", "2:s", "-map", "2:s",
            "-c:v", "libx264", "-preset", "ultrafast", "-g", "10", "-c:a", "aac", "-c:s", "srt"]
    for spec, track in zip(("v:0", "a:0", "s:0", "s:1"), tags):
        for key, value in track.items():
            argv += [f"-metadata:s:{spec}", f"{key}={value}"]
    subprocess.run([*argv, str(path)], check=True, timeout=60, capture_output=True)
    return path


@pytest.fixture(scope="module")
def films(tmp_path_factory):
    return tmp_path_factory.mktemp("tagged")


@settings(max_examples=8, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(track_tags(argv=True), min_size=4, max_size=4))
@example([{"language": HOSTILE_LANGUAGE, "title": HOSTILE_TITLE}] * 2
         + [{"language": HOSTILE_LANGUAGE, "title": QUOTED_TITLE}, {"language": "he", "title": BIDI_TITLE}])
def test_fuzz_real_files_through_real_ffprobe(films, tags):
    film = tagged_film(films / "film.mkv", tags)
    try:
        info = media.run_ffprobe("ffprobe", str(film))
    finally:
        film.unlink()
    assert len(info.subtitles) == 2 and len(info.audio) == 1
    check_entry(info)
    text, streams = multivariant_of(info)
    check_multivariant(text, "j1", streams)


# -- the real service ---------------------------------------------------------------------------
HOSTILE_FILM = f"hostile\n{FORGED_LOG}.mkv"
HOSTILE_TAGS = [{"language": HOSTILE_LANGUAGE, "title": HOSTILE_TITLE},           # video
                {"language": HOSTILE_LANGUAGE, "title": QUOTED_TITLE},            # audio
                {"language": HOSTILE_LANGUAGE, "title": HOSTILE_TITLE},           # subtitles 0
                {"language": "de", "title": QUOTED_TITLE}]                        # subtitles 1


def ffprobe_tags(path):
    out = subprocess.run(["ffprobe", "-v", "error", "-of", "json", "-show_entries", "stream_tags=language,title",
                          f"file:{path}"], capture_output=True, timeout=30, check=True)
    return [s.get("tags", {}) for s in json.loads(out.stdout)["streams"]]


@pytest.fixture(scope="module")
def hostile_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile") / "media"
    root.mkdir()
    tagged_film(root / HOSTILE_FILM, HOSTILE_TAGS, seconds=3, size="320x240")
    return root


def test_matroska_keeps_the_hostile_tags(hostile_root):
    """The precondition of the service's test: FFmpeg's Matroska muxer and ffprobe pass the tags
    on as written (a newer FFmpeg that refused them would make the test below prove less)."""
    assert ffprobe_tags(hostile_root / HOSTILE_FILM) == HOSTILE_TAGS


@pytest.fixture(scope="module")
def played(hostile_root, tmp_path_factory):
    """The hostile film, remuxed to the end by the real service: (worker, the job's answer)."""
    worker = WorkerProcess(tmp_path_factory.mktemp("hostile-worker"), hostile_root).start()
    try:
        answer = worker.post_job({"job_id": "hostile", "source_path": str(hostile_root / HOSTILE_FILM),
                                  "configuration": {"force_remux": True}})
        assert answer.status_code == 202, answer.text
        assert worker.wait_state("hostile", {"COMPLETED", "FAILED"}, timeout=60)["state"] == "COMPLETED"
        yield worker, answer.json()
        worker.delete("hostile")
    finally:
        worker.stop()


@pytest.mark.integration
def test_the_multivariant_playlist_served_holds_its_own_lines(played):
    worker, _ = played
    answer = requests.get(f"{worker.url}/hostile.m3u8", timeout=30)
    assert answer.status_code == 200, answer.text
    renditions = check_multivariant(answer.text, "hostile", [0, 1])
    assert [r.get("LANGUAGE") for r in renditions] == [None, '"de"']
    assert renditions[0]["NAME"] == '"Evil #EXT-X-STREAM-INF:BANDWIDTH=1 http://evil.example/p.m3u8"'
    assert renditions[1]["NAME"].startswith("\"Quote' #EXT-X-STREAM-INF:BANDWIDTH=1 http://evil.example")
    assert "evil.example" not in answer.text.replace(renditions[0]["NAME"], "").replace(renditions[1]["NAME"], "")


@pytest.mark.integration
def test_the_media_and_subtitle_playlists_served_hold_their_own_lines(played):
    worker, _ = played
    own = {hls_names.media_playlist("hostile"): hls_names.SEGMENT,
           **{hls_names.subtitle_playlist("hostile", k): hls_names.SUBTITLE_SEGMENT for k in (0, 1)}}
    for name, segment in own.items():
        answer = requests.get(f"{worker.url}/{name}", timeout=30)
        assert answer.status_code == 200, (name, answer.text)
        for line in lines_of(answer.text):
            assert (line.startswith("#EXT") or segment.fullmatch(line)) and "evil" not in line, (name, line)
        playlist = m3u8.loads(answer.text, uri=f"{worker.url}/{name}")
        assert playlist.is_endlist and playlist.segments and not playlist.is_variant
    cue = requests.get(playlist.segments[0].absolute_uri, timeout=30)
    assert cue.status_code == 200 and cue.text.startswith("WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:"), cue.text
    assert "Hello" in cue.text and "evil" not in cue.text


@pytest.mark.integration
def test_the_job_answer_holds_the_tags_as_kept(played):
    _, answer = played
    audio, subtitles = answer["tracks"]["audio"], answer["tracks"]["subtitles"]
    assert (audio["language"], audio["title"]) == (None, untrusted.title(QUOTED_TITLE))
    assert [(s["language"], s["title"]) for s in subtitles] == [(None, untrusted.title(HOSTILE_TITLE)),
                                                                 ("deu", untrusted.title(QUOTED_TITLE))]


@pytest.mark.integration
def test_a_file_name_cannot_forge_a_log_line(played):
    worker, _ = played
    wait_for(lambda: "subtitles of" in worker.log(), 30, what="the subtitles' extraction in the log")
    assert f"hostile\\n{FORGED_LOG}.mkv" in worker.log()  # the name as %r writes it
    assert not [line for line in worker.log().splitlines() if line.startswith(FORGED_LOG[:10])], worker.log()
