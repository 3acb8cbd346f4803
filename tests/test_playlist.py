import m3u8
import pytest

from transcode_worker.playlist import START_TAG, for_players, target_duration

# What FFmpeg writes after a remux's third segment ran past the first two (target 5 now, 2 before)
FFMPEG = """#EXTM3U
#EXT-X-VERSION:6
#EXT-X-TARGETDURATION:5
#EXT-X-MEDIA-SEQUENCE:7
#EXT-X-PLAYLIST-TYPE:EVENT
#EXT-X-INDEPENDENT-SEGMENTS
#EXTINF:2.000000,
m_7.ts
#EXTINF:2.000000,
m_8.ts
#EXTINF:4.480000,
m_9.ts
#EXT-X-ENDLIST
"""


@pytest.mark.parametrize("segment_s, remux, expected", [
    (4.0, False, 4), (2.5, False, 3), (6.0, True, 16), (1.0, False, 1),
])
def test_target_duration(segment_s, remux, expected):
    assert target_duration(segment_s, remux) == expected


def test_the_target_is_the_jobs_not_ffmpegs():
    parsed = m3u8.loads(for_players(FFMPEG, 12, completed=True))
    assert parsed.target_duration == 12
    assert [s.uri for s in parsed.segments] == ["m_7.ts", "m_8.ts", "m_9.ts"]
    assert parsed.media_sequence == 7 and parsed.playlist_type == "event" and parsed.is_independent_segments


def test_players_start_at_the_beginning():
    text = for_players(FFMPEG, 12, completed=False)
    assert START_TAG in text.splitlines()
    assert m3u8.loads(text).start.time_offset == 0


@pytest.mark.parametrize("completed", [False, True])
def test_endlist_when_and_only_when_completed(completed):
    # FFmpeg writes EXT-X-ENDLIST when it stops in order, whatever the job's fate
    text = for_players(FFMPEG, 12, completed=completed)
    assert m3u8.loads(text).is_endlist is completed
    assert text.count("#EXT-X-ENDLIST") == int(completed) and text.endswith("\n")


def test_endlist_added_when_ffmpeg_had_not_written_it_yet():
    growing = FFMPEG.replace("#EXT-X-ENDLIST\n", "")
    assert for_players(growing, 12, completed=True).splitlines()[-1] == "#EXT-X-ENDLIST"
