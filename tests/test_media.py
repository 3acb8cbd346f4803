"""What the probe makes of ffprobe's report (pure: reports written here as ffprobe writes them)."""
import pytest

from transcode_worker import media


def report(video=None, audio=(), subtitles=()):
    streams = [{"index": 0, "codec_type": "video", "codec_name": "hevc", "profile": "Main 10", "width": 3840,
                "height": 2160, "pix_fmt": "yuv420p10le", "avg_frame_rate": "24000/1001", **(video or {})}]
    for kind, extra in [("audio", a) for a in audio] + [("subtitle", s) for s in subtitles]:
        streams.append({"index": len(streams), "codec_type": kind, **extra})
    return {"format": {"duration": "7200.5", "format_name": "matroska,webm", "bit_rate": "40000000"},
            "streams": streams}


PQ = {"color_transfer": "smpte2084", "color_primaries": "bt2020", "color_space": "bt2020nc"}


def dovi(profile, compatibility):
    return {"side_data_list": [{"side_data_type": "DOVI configuration record", "dv_profile": profile,
                                "dv_bl_signal_compatibility_id": compatibility}]}


@pytest.mark.parametrize("video, hdr10_plus, kind, video_range, mappable", [
    ({}, False, "SDR", "SDR", True),
    (PQ, False, "HDR10", "PQ", True),
    (PQ, True, "HDR10+", "PQ", True),
    ({"color_transfer": "arib-std-b67"}, False, "HLG", "HLG", True),
    ({**PQ, **dovi(8, 1)}, False, "DOVI", "PQ", True),    # 8.1: an HDR10 base layer
    ({**PQ, **dovi(7, 6)}, False, "DOVI", "PQ", True),    # Blu-ray: HDR10 base layer
    ({"color_transfer": "arib-std-b67", **dovi(8, 4)}, False, "DOVI", "HLG", True),  # 8.4: HLG
    (dovi(5, 0), False, "DOVI", "PQ", False),             # 5: Dolby's own colour, nothing else
])
def test_the_hdr_kind(video, hdr10_plus, kind, video_range, mappable):
    v = media.parse_probe(report(video), hdr10_plus=hdr10_plus).video
    assert (v.hdr, v.video_range, v.tone_mappable) == (kind, video_range, mappable)


def test_dolby_vision_profile_and_base_layer():
    v = media.parse_probe(report({**PQ, **dovi(8, 1)})).video
    assert (v.dovi_profile, v.dovi_base_layer) == (8, "HDR10")
    v = media.parse_probe(report(dovi(5, 0))).video
    assert (v.dovi_profile, v.dovi_base_layer) == (5, None)


def test_hdr10_plus_is_found_in_the_first_frame():
    frames = {"frames": [{"side_data_list": [{"side_data_type": "Mastering display metadata"},
                                             {"side_data_type": "HDR Dynamic Metadata SMPTE2094-40 (HDR10+)"}]}]}
    assert media.has_hdr10_plus(frames)
    assert not media.has_hdr10_plus({"frames": [{"side_data_list": [{"side_data_type": "Mastering display metadata"}]}]})
    assert not media.has_hdr10_plus({})


def test_the_video_stream():
    v = media.parse_probe(report(PQ)).video
    assert (v.codec, v.profile, v.width, v.height, v.bit_depth, v.frame_rate) == ("hevc", "Main 10", 3840, 2160, 10, 23.976)
    assert (v.color_primaries, v.color_transfer, v.color_space) == ("bt2020", "smpte2084", "bt2020nc")


def test_audio_tracks_with_languages_and_flags():
    info = media.parse_probe(report(audio=[
        {"codec_name": "truehd", "channels": 8, "channel_layout": "7.1", "tags": {"language": "ger", "title": "Deutsch"},
         "disposition": {"default": 1}},
        {"codec_name": "ac3", "channels": 6, "tags": {"language": "en", "title": "Commentary by the director"}},
        {"codec_name": "aac", "channels": 2, "tags": {"language": "eng"}, "disposition": {"comment": 1}},
        {"codec_name": "aac", "channels": 2, "tags": {"language": "eng"}, "disposition": {"visual_impaired": 1}},
        {"codec_name": "eac3", "channels": 6, "tags": {"language": "und", "title": "Audio Description"}},
    ]))
    assert [(a.stream, a.index, a.language, a.default, a.commentary, a.description) for a in info.audio] == [
        (0, 1, "deu", True, False, False), (1, 2, "eng", False, True, False), (2, 3, "eng", False, True, False),
        (3, 4, "eng", False, False, True), (4, 5, None, False, False, True)]
    assert info.audio[0].layout == "7.1" and info.audio[0].channels == 8


def test_subtitle_tracks_text_or_picture():
    info = media.parse_probe(report(subtitles=[
        {"codec_name": "subrip", "tags": {"language": "fre"}, "disposition": {"forced": 1}},
        {"codec_name": "hdmv_pgs_subtitle", "tags": {"language": "deu"}, "disposition": {"hearing_impaired": 1}},
    ]))
    assert [(s.stream, s.language, s.forced, s.hearing_impaired, s.text) for s in info.subtitles] == [
        (0, "fra", True, False, True), (1, "deu", False, True, False)]


@pytest.mark.parametrize("tag, code", [("de", "deu"), ("ger", "deu"), ("DEU", "deu"), ("fre", "fra"), ("und", None),
                                       ("", None), (None, None), ("qaa", "qaa")])
def test_language_codes_in_any_iso_639_form_are_one(tag, code):
    assert media.language_code(tag) == code


def test_the_cache_round_trip_keeps_everything():
    info = media.parse_probe(report({**PQ, **dovi(8, 1)}, audio=[{"codec_name": "aac", "channels": 2}],
                                    subtitles=[{"codec_name": "ass"}]))
    assert media.info_from_dict(media.info_to_dict(info)) == info


@pytest.mark.parametrize("duration, why", [("inf", "no finite duration"), ("nan", "no finite duration"),
                                           ("0", "no finite duration"), ("31536000", "claims to last 8760 hours")])
def test_a_duration_no_film_has_is_refused(duration, why):
    """The header's duration makes the whole-film playlist: years of it would be a list of
    millions of segments, built for every player's request."""
    data = report()
    data["format"]["duration"] = duration
    with pytest.raises(media.ProbeError, match=why):
        media.parse_probe(data)
    data["format"]["duration"] = str(47 * 3600)
    assert media.parse_probe(data).duration_s == 47 * 3600
