import m3u8

from transcode_worker import grid
from transcode_worker.playlist import duration, media_playlist

FILM = grid.for_transcode(600.6, 24000 / 1001, 4.0, first_s=1.0)


def test_the_whole_film_at_once_as_vod():
    parsed = m3u8.loads(media_playlist(FILM, lambda n: f"j_{n}.ts"))
    assert parsed.playlist_type == "vod" and parsed.is_endlist and parsed.is_independent_segments
    assert [s.uri for s in parsed.segments] == [f"j_{n}.ts" for n in range(len(FILM))]
    assert abs(sum(s.duration for s in parsed.segments) - 600.6) < 1e-3
    assert parsed.media_sequence == 0 and "#EXT-X-DISCONTINUITY" not in media_playlist(FILM, str)


def test_no_segment_is_longer_than_the_target():
    parsed = m3u8.loads(media_playlist(FILM, str))
    assert all(s.duration <= parsed.target_duration for s in parsed.segments)
    assert parsed.target_duration == 5  # 4.004 s: 96 frames at 23.976


def test_it_starts_where_the_seek_is():
    parsed = m3u8.loads(media_playlist(FILM, str, start_s=300.0))
    assert parsed.start.time_offset == 300.0 and parsed.start.precise == "YES"


def test_fmp4_names_its_init_segment_once():
    text = media_playlist(FILM, lambda n: f"j_{n}.m4s", init_uri="j_init_0.mp4")
    assert text.count("#EXT-X-MAP:") == 1 and '#EXT-X-MAP:URI="j_init_0.mp4"' in text
    assert "#EXT-X-VERSION:7" in text


def test_duration_adds_the_extinfs():
    assert abs(duration(media_playlist(FILM, str)) - 600.6) < 1e-3
