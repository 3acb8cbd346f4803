"""The multivariant playlist's attributes (pure): codec strings from the bytes FFmpeg writes,
bandwidths from the command. The integration tests check CODECS against ffprobe for every
source kind (test_hls_conformance.py)."""
import struct

import m3u8
import pytest

from specs import hls_output, job_spec, media_info
from transcode_worker import multivariant


def box(kind, payload):
    return struct.pack(">I4s", 8 + len(payload), kind.encode()) + payload


def init_segment(*entries):
    """A minimal moov with one trak per sample entry (only the boxes the parser walks)."""
    stsd = [box("stsd", b"\0" * 4 + struct.pack(">I", 1) + entry) for entry in entries]
    traks = b"".join(box("trak", box("mdia", box("minf", box("stbl", s)))) for s in stsd)
    return box("ftyp", b"iso6") + box("moov", traks)


def visual(kind, config_kind, config):
    return box(kind, b"\0" * 78 + box(config_kind, config))


# ISO/IEC 14496-15 E.3's example: Main 10 (profile 2), compatibility flag 2, level 4.1 (123),
# progressive_source_flag (0xB0): hvc1.2.4.L123.B0
HVCC = bytes([1, 0x02, 0x20, 0, 0, 0, 0xB0, 0, 0, 0, 0, 0, 123]) + b"\0" * 10


def esds(object_type, audio_specific):
    decoder_specific = bytes([5, len(audio_specific)]) + audio_specific
    decoder_config = bytes([4, 13 + len(decoder_specific), object_type, 0x15]) + b"\0" * 11 + decoder_specific
    es = bytes([3, 3 + len(decoder_config)]) + b"\0\x01\0" + decoder_config
    return box("mp4a", b"\0" * 28 + box("esds", b"\0" * 4 + es))


def test_hevc_and_aac_from_an_init_segment():
    data = init_segment(esds(0x40, bytes([0x11, 0x90])), visual("hvc1", "hvcC", HVCC))
    assert multivariant.codecs_of_segment(data, fmp4=True) == ["hvc1.2.4.L123.B0", "mp4a.40.2"]  # video first


def test_high_tier_and_he_aac():
    high = bytearray(HVCC)
    high[1] |= 0x20  # tier flag
    data = init_segment(visual("hvc1", "hvcC", bytes(high)), esds(0x40, bytes([0x2B, 0x92])))
    assert multivariant.codecs_of_segment(data, fmp4=True) == ["hvc1.2.4.H123.B0", "mp4a.40.5"]


def test_avc_from_an_init_segment():
    data = init_segment(visual("avc1", "avcC", bytes([1, 0x64, 0x00, 0x1F, 0xFF])))
    assert multivariant.codecs_of_segment(data, fmp4=True) == ["avc1.64001f"]


def test_nothing_readable_gives_no_codecs():
    assert multivariant.codecs_of_segment(b"garbage", fmp4=True) == []
    assert multivariant.codecs_of_segment(b"\x47" + b"\0" * 187, fmp4=False) == []


def test_bandwidths_of_a_transcode_cover_a_whole_encoder_buffer_in_a_segment():
    spec = job_spec(bitrate_bps=4_000_000)
    peak, average = multivariant.bandwidths(spec, hls_output("j1", 4.0), audio=160_000)
    assert average == pytest.approx((4_000_000 + 160_000) * 1.10, abs=1)
    assert peak == pytest.approx((4_000_000 * 1.5 + 160_000) * 1.10, abs=1)


def test_bandwidths_of_a_remux_come_from_the_source():
    spec = job_spec(force_remux=True)  # a 5 Mb/s file (its video's bit rate not given), stereo AAC beside it
    peak, average = multivariant.bandwidths(spec, hls_output("j1", 4.0), audio=160_000)
    # the file's 5 Mb/s (its audio tracks' rates not given), and the stereo rendition's 160 kb/s
    assert average == pytest.approx((5_000_000 + 160_000) * 1.10, abs=1) and peak == 2 * average


def test_the_playlist_players_parse():
    spec = job_spec(media=media_info(height=2160, video_codec="hevc", color_transfer="smpte2084", hdr="HDR10"),
                    force_remux=True)
    text = multivariant.playlist_text(spec, hls_output("j1", 4.0, fmp4=True), ["hvc1.2.4.L153.B0"])
    playlist = m3u8.loads(text)
    assert playlist.is_variant and [p.uri for p in playlist.playlists] == ["j1.media.m3u8"]
    info = playlist.playlists[0].stream_info
    # the video's codec as FFmpeg wrote it, the audio group's as the worker makes it
    assert info.codecs == "hvc1.2.4.L153.B0,mp4a.40.2" and info.audio == "stereo"
    assert [(m.type, m.group_id, m.uri) for m in playlist.media] == [("AUDIO", "stereo", "j1.audio0.m3u8")]
    assert info.resolution == (3840, 2160)
    assert info.frame_rate == 25.0 and info.video_range == "PQ" and info.bandwidth > info.average_bandwidth
    tone_mapped = multivariant.playlist_text(job_spec(media=spec.media), hls_output("j1", 4.0), ["avc1.64001f"])
    assert "VIDEO-RANGE=SDR" in tone_mapped and "RESOLUTION=1280x720" in tone_mapped
