"""WebVTT for players (pure), and the subtitle rule."""
import re

import pytest

from specs import media_info
from transcode_worker import grid, webvtt
from transcode_worker.media import AudioStream, MediaInfo, SubtitleStream
from transcode_worker.tracks import TrackChoiceError, choose_subtitle

VTT = """WEBVTT

1
00:00:01.000 --> 00:00:02.500 line:0
first
two lines

01:00:03.250 --> 01:00:04.000
later

00:09.000 --> 00:08.000
backwards: dropped
"""


def test_parse():
    cues = webvtt.parse(VTT)
    assert cues == [webvtt.Cue(1.0, 2.5, " line:0", "first\ntwo lines"), webvtt.Cue(3603.25, 3604.0, "", "later")]


def test_a_segment_holds_the_cues_it_overlaps_and_none_over_before_the_run():
    cues = webvtt.parse(VTT)
    text = webvtt.segment(cues, 0.0, 1.2, mpegts=126000, local_s=0.5)
    assert text.startswith("WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:126000,LOCAL:00:00:00.500\n\n")
    assert "00:00:01.000 --> 00:00:02.500 line:0\nfirst\ntwo lines" in text and "later" not in text
    assert "first" not in webvtt.segment(cues, 3.0, 7.0, mpegts=0, local_s=3.0)  # over before the run began


# FFmpeg's WebVTT of a styled (ASS) event whose text holds "\N\N", "-->" and a CR, as FFmpeg 5.1 writes it
STYLED = "WEBVTT\n\n00:00.500 --> 00:01.500\none\ntwo --> three\n\n00:00:00.000 --> 00:00:09.000\nforged\rcr\n"


def cues_a_player_reads(text):
    """[(timings line, text lines)] of a WebVTT file as the WebVTT parser reads it: CR, LF and
    CRLF end a line, an empty line ends a cue, and so does a line with "-->" (the next cue's)."""
    cues, current = [], None
    for line in re.split(r"\r\n|\r|\n", text)[1:]:  # after the header
        if "-->" in line:
            current = (line, [])
            cues.append(current)
        elif not line:
            current = None
        elif current is not None:
            current[1].append(line)
    return cues


def test_a_player_reads_the_cues_a_segment_was_written_with():
    cues = webvtt.parse(STYLED)
    assert [c.text for c in cues] == ["forged\ncr", "one"]
    text = webvtt.segment(cues, 0.0, 10.0, mpegts=0, local_s=0.0)
    assert cues_a_player_reads(text) == [
        (f"{webvtt.stamp(c.start)} --> {webvtt.stamp(c.end)}{c.settings}", c.text.split("\n")) for c in cues]


def test_the_subtitle_playlist_is_the_video_grid_segment_for_segment():
    g = grid.for_transcode(3.5, 25.0, 2.5, first_s=1.0)
    text = webvtt.playlist(g, "j_1", 0, start_s=1.2)
    assert g.durations() == [1.0, 1.0, 1.5]
    assert "#EXTINF:1.000000,\nj_1_sub0_1.vtt\n#EXTINF:1.500000,\nj_1_sub0_2.vtt\n#EXT-X-ENDLIST" in text
    assert "EXT-X-MAP" not in text and "#EXT-X-PLAYLIST-TYPE:VOD" in text
    assert "#EXT-X-START:TIME-OFFSET=1.200,PRECISE=YES" in text


def subtitles(*tracks):
    info = media_info(audio=[])
    return MediaInfo(**{**info.__dict__, "subtitles": tuple(
        SubtitleStream(stream=n, index=n + 2, codec=codec, language=language, forced=forced, text=codec == "subrip")
        for n, (codec, language, forced) in enumerate(tracks))})


def audio_in(language):
    return AudioStream(stream=0, index=1, codec="aac", language=language)


FILM = subtitles(("subrip", "eng", False), ("subrip", "fra", True), ("hdmv_pgs_subtitle", "deu", True))


@pytest.mark.parametrize("audio, stream, burn, remux, expected", [
    ("eng", None, False, False, (None, False, None)),
    ("fra", None, False, False, (1, False, "forced")),          # a forced text track: shown
    ("deu", None, False, False, (2, True, "forced")),           # a forced picture track: burned
    ("deu", None, False, True, (None, False, None)),            # ... which a remux cannot
    ("eng", 0, False, False, (0, False, "subtitle_stream")),
    ("eng", 0, True, False, (0, True, "subtitle_stream")),
    ("eng", 2, False, False, (2, True, "subtitle_stream")),     # a picture track is always burned
])
def test_the_subtitle_rule(audio, stream, burn, remux, expected):
    track, burned, chosen_by = choose_subtitle(FILM, audio_in(audio), stream, burn, remux)
    assert (track and track.stream, burned, chosen_by) == expected


def test_a_subtitle_the_source_lacks_or_a_remux_cannot_show():
    for args, field in [((5,), "configuration.subtitle_stream"), ((None, True), "configuration.burn_subtitles"),
                        ((2, False, True), "configuration.subtitle_stream"),
                        ((0, True, True), "configuration.burn_subtitles")]:
        with pytest.raises(TrackChoiceError) as err:
            choose_subtitle(FILM, audio_in("eng"), *args)
        assert err.value.field == field
