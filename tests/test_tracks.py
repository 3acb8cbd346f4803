"""The audio rule (pure): which track a job plays, and the 422 for one the source lacks."""
import pytest

from specs import media_info
from transcode_worker.media import AudioStream
from transcode_worker.tracks import TrackChoiceError, choose_audio


def track(stream, language, default=False, commentary=False, description=False, title=None):
    return AudioStream(stream=stream, index=stream + 1, codec="ac3", channels=6, layout="5.1(side)",
                       language=language, title=title, default=default, commentary=commentary,
                       description=description)


FILM = media_info(audio=[track(0, "eng", commentary=True, title="Commentary"), track(1, "eng", default=True),
                         track(2, "deu", description=True), track(3, "deu"), track(4, "fra", commentary=True)])


@pytest.mark.parametrize("stream, language, expected, chosen_by", [
    (None, None, 1, "default"),
    (None, "de", 3, "audio_language"),       # not the audio description
    (None, "ger", 3, "audio_language"),
    (None, "deu", 3, "audio_language"),
    (None, "EN", 1, "audio_language"),       # not the commentary
    (None, "fr", 4, "audio_language"),       # only a commentary in French: that one
    (0, None, 0, "audio_stream"),
    (2, "fr", 2, "audio_stream"),            # the stream wins
])
def test_the_rule(stream, language, expected, chosen_by):
    chosen, by = choose_audio(FILM, stream, language)
    assert (chosen.stream, by) == (expected, chosen_by)


def test_without_a_default_the_first_that_is_not_commentary():
    info = media_info(audio=[track(0, "eng", commentary=True), track(1, "eng"), track(2, "deu")])
    assert choose_audio(info)[0].stream == 1
    only_commentary = media_info(audio=[track(0, "eng", commentary=True)])
    assert choose_audio(only_commentary) == (only_commentary.audio[0], "first")


def test_a_silent_source_plays_without_audio_unless_asked_for_some():
    silent = media_info(audio=())
    assert choose_audio(silent) == (None, None)
    with pytest.raises(TrackChoiceError, match="no audio at all") as err:
        choose_audio(silent, audio_language="de")
    assert err.value.field == "configuration.audio_language"


def test_what_the_source_lacks_is_named_with_what_it_has():
    with pytest.raises(TrackChoiceError) as err:
        choose_audio(FILM, 5)
    assert err.value.field == "configuration.audio_stream"
    assert str(err.value).startswith("no audio stream 5: the source has: 0: eng ac3 5.1(side) \"Commentary\" (commentary); ")
    with pytest.raises(TrackChoiceError) as err:
        choose_audio(FILM, audio_language="ja")
    assert err.value.field == "configuration.audio_language" and "no audio track in Japanese ('ja')" in str(err.value)
    assert "3: deu ac3 5.1(side)" in str(err.value)
