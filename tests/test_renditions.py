"""Which audio renditions a job offers, in which groups, and how each is made (pure, as a table)."""
import pytest

from specs import hls_output, job_spec, media_info
from transcode_worker import audio, renditions
from transcode_worker.ffmpeg_command import DIALOGUE, DOWNMIX, build_audio_command
from transcode_worker.media import AudioStream


def track(stream, codec="aac", channels=2, language="eng", layout=None, **flags):
    layout = layout or {1: "mono", 2: "stereo", 6: "5.1(side)", 8: "7.1"}.get(channels)
    return AudioStream(stream=stream, index=stream + 1, codec=codec, channels=channels, layout=layout,
                       language=language, **flags)


def described(media, chosen):
    """{group: [(rendition name, kind, channels, codec)]}"""
    return {g.id: [(r.name, r.kind, r.channels, r.codec) for r in g.renditions] for g in renditions.groups(media, chosen)}


@pytest.mark.parametrize("tracks, chosen, expected", [
    # a silent film: no group at all
    ([], None, {}),
    # stereo only: one group, no dialogue rendition (no centre to raise)
    ([track(0), track(1, language="deu")], 0,
     {"stereo": [("audio0", "stereo", 2, "mp4a.40.2"), ("audio1", "stereo", 2, "mp4a.40.2")]}),
    # AC-3 5.1 chosen: copied in its own group with the stereo track's stereo; a dialogue rendition
    ([track(0, "ac3", 6), track(1)], 0,
     {"stereo": [("audio0", "stereo", 2, "mp4a.40.2"), ("audio1", "stereo", 2, "mp4a.40.2"),
                 ("audio0-dialogue", "dialogue", 2, "mp4a.40.2")],
      "ac3": [("audio0-copy", "copy", 6, "ac-3"), ("audio1", "stereo", 2, "mp4a.40.2"),
              ("audio0-dialogue", "dialogue", 2, "mp4a.40.2")]}),
    # E-AC-3 7.1: copied, and made AC-3 5.1 beside it; the stereo track chosen: no dialogue rendition
    ([track(0, "eac3", 8), track(1)], 1,
     {"stereo": [("audio0", "stereo", 2, "mp4a.40.2"), ("audio1", "stereo", 2, "mp4a.40.2")],
      "eac3": [("audio0-copy", "copy", 8, "ec-3"), ("audio1", "stereo", 2, "mp4a.40.2")],
      "ac3": [("audio0-ac3", "ac3", 6, "ac-3"), ("audio1", "stereo", 2, "mp4a.40.2")]}),
    # DTS and FLAC 5.1: AAC 5.1; 7.1 PCM: AAC 7.1
    ([track(0, "dts", 6), track(1, "pcm_s24le", 8)], 0,
     {"stereo": [("audio0", "stereo", 2, "mp4a.40.2"), ("audio1", "stereo", 2, "mp4a.40.2"),
                 ("audio0-dialogue", "dialogue", 2, "mp4a.40.2")],
      "aac-surround": [("audio0-surround", "surround", 6, "mp4a.40.2"), ("audio1-surround", "surround", 8, "mp4a.40.2"),
                       ("audio0-dialogue", "dialogue", 2, "mp4a.40.2")]}),
])
def test_groups(tracks, chosen, expected):
    media = media_info(audio=tracks)
    assert described(media, media.audio[chosen] if chosen is not None else None) == expected


@pytest.mark.parametrize("layout, channels, centre", [
    ("5.1(side)", 6, True), ("7.1", 8, True), ("3.0", 3, True), ("quad", 4, False), ("2.1", 3, False),
    ("stereo", 2, False), (None, 6, True), (None, 4, False),
])
def test_a_dialogue_rendition_needs_a_centre(layout, channels, centre):
    assert renditions.has_centre(track(0, "ac3", channels, layout=layout or "")) is centre


def lines(tracks, chosen):
    media = media_info(audio=tracks)
    return renditions.media_lines("j1", renditions.groups(media, media.audio[chosen])[0], media.audio[chosen])


def test_attributes_default_commentary_description_and_names():
    found = lines([track(0, title="Main"), track(1, language="deu"), track(2, commentary=True, title="Director"),
                   track(3, description=True), track(4, language=None), track(5, language="xx-not a tag")], 1)
    assert found == [
        '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="stereo",NAME="Main",LANGUAGE="en",DEFAULT=NO,AUTOSELECT=YES,'
        'CHANNELS="2",URI="j1.audio0.m3u8"',
        '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="stereo",NAME="German",LANGUAGE="de",DEFAULT=YES,AUTOSELECT=YES,'
        'CHANNELS="2",URI="j1.audio1.m3u8"',
        '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="stereo",NAME="Director (Commentary)",LANGUAGE="en",DEFAULT=NO,'
        'AUTOSELECT=NO,CHANNELS="2",URI="j1.audio2.m3u8"',
        '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="stereo",NAME="English (Audio description)",LANGUAGE="en",DEFAULT=NO,'
        'AUTOSELECT=YES,CHARACTERISTICS="public.accessibility.describes-video",CHANNELS="2",URI="j1.audio3.m3u8"',
        '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="stereo",NAME="Audio 5",LANGUAGE="und",DEFAULT=NO,AUTOSELECT=YES,'
        'CHANNELS="2",URI="j1.audio4.m3u8"',
        '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="stereo",NAME="Audio 6",LANGUAGE="und",DEFAULT=NO,AUTOSELECT=YES,'
        'CHANNELS="2",URI="j1.audio5.m3u8"',
    ]


def test_names_are_unique_in_a_group_and_quoted_safely():
    found = lines([track(0, title='Eng"lish'), track(1, title="Eng'lish")], 0)
    assert 'NAME="Eng\'lish"' in found[0] and 'NAME="Eng\'lish (2)"' in found[1]


def test_a_chosen_commentary_is_autoselect_as_the_default():
    found = lines([track(0, commentary=True)], 0)
    assert "DEFAULT=YES,AUTOSELECT=YES" in found[0]


def test_every_lists_the_dialogue_rendition_of_any_centre_track():
    media = media_info(audio=[track(0, "ac3", 6), track(1, "ac3", 6)])
    assert set(renditions.every(media, media.audio[0])) == {
        "audio0", "audio1", "audio0-copy", "audio1-copy", "audio0-dialogue", "audio1-dialogue"}


@pytest.mark.parametrize("kind, fold, encoder", [
    ("stereo", DOWNMIX, ["-c:a", "aac", "-b:a", "160k", "-ac", "2"]),
    ("dialogue", DIALOGUE, ["-c:a", "aac", "-b:a", "160k", "-ac", "2"]),
    ("copy", None, ["-c:a", "copy"]),
])
def test_audio_commands_of_a_rendition_start_at_the_boundary_and_cut_on_the_grid(kind, fold, encoder):
    media = media_info(audio=[track(0, "ac3", 6)])
    rendition = renditions.every(media, media.audio[0])[renditions.Rendition(media.audio[0], kind, 2, "", 0).name]
    output = hls_output(start_number=10)
    output = type(output)(output.job_id, output.grid, 10, rendition=rendition.name, run_id=3)
    argv = build_audio_command(job_spec(media=media), output, rendition)
    assert argv[argv.index("-ss") + 1] == f"{output.grid.start(10):.6f}"
    assert argv[argv.index("-c:a"):argv.index("-c:a") + len(encoder)] == encoder and "-vn" in argv
    if fold is None:  # a copy: the track as it is
        assert argv[argv.index("-map") + 1] == "0:1" and "-filter_complex" not in argv
    else:  # from 40 s on the source's clock (silence where the track has none) to the film's end (560 s)
        assert argv[argv.index("-map") + 1] == "[out]"
        assert argv[argv.index("-filter_complex") + 1] == (
            "anullsrc=r=48000:cl=stereo,atrim=duration=560.000000,asetpts=PTS+1920000[silence];"
            f"[0:1]aresample=48000:async=1:first_pts=1920000,{fold}[track];"
            "[silence][track]amix=inputs=2:duration=first:dropout_transition=0:normalize=0[out]")
    cuts = argv[argv.index("-segment_times") + 1].split(",")
    assert cuts[0] == f"{output.grid.start(11) + 10.0:.6f}"  # the boundary itself, on the job's clock
    assert argv[-1] == f"j1.run10-3/j1_%d.ts" and output.segment(11) == "j1.audio0" + (
        "" if kind == "stereo" else f"-{kind}") + "_11.ts"


def test_a_run_of_one_segment_is_never_cut():
    """A film of one segment (a remux whose only keyframe is its first), or a run at the last:
    no cut is listed, and the muxer's own every-2-seconds is off (an audio run's only segment
    ended after its first packet)."""
    media = media_info(audio=[track(0)])
    rendition = renditions.every(media, media.audio[0])["audio0"]
    output = hls_output(start_number=0, duration=3.0)
    last = type(output)(output.job_id, output.grid, len(output.grid) - 1, rendition="audio0")
    argv = build_audio_command(job_spec(media=media), last, rendition)
    assert "-segment_times" not in argv and float(argv[argv.index("-segment_time") + 1]) > 10 ** 6


@pytest.mark.parametrize("throttle_lead_s, lead", [(180.0, 30.0), (10.0, 10.0), (0.0, 0.0)])
def test_a_renditions_run_is_paused_30_s_ahead_of_its_player_unless_throttling_says_less(throttle_lead_s, lead):
    assert audio.lead_limit(throttle_lead_s) == lead
