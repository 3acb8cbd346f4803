"""Which of a source's tracks a job plays, and what the job's answer says about them (pure).

The audio rule, in order: the track the command names by ``audio_stream``; else the first track
in ``audio_language`` that is not commentary or audio description (the first in that language
at all when it has only such); else the track flagged default; else the first that is not
commentary; else the first. A value the source cannot satisfy is a FieldErrors-style message
that lists what the source has.

The subtitle rule: the track ``subtitle_stream`` names; else a forced track in the language of
the audio played (what a film shows when its characters speak another language); else none.
A picture track (PGS, DVD, DVB) can only be burned into the video; a text track is offered as
a WebVTT rendition, and burned too with ``burn_subtitles``.
"""
from .media import language_code, language_name


class TrackChoiceError(ValueError):
    """(field, message): the command asks for a track the source does not have."""

    def __init__(self, field, message):
        super().__init__(message)
        self.field = field


AUDIO_FLAGS, SUBTITLE_FLAGS = ("default", "commentary", "description"), ("default", "forced")


def describe(track, flags):
    """'1: deu ac3 5.1(side) "Deutsch" (default)': one track as an error message lists it."""
    words = [f"{track.stream}:", track.language or "und", track.codec]
    if getattr(track, "layout", None) or getattr(track, "channels", None):
        words.append(track.layout or f"{track.channels}ch")
    if track.title:
        words.append(f'"{track.title}"')
    shown = [name for name in flags if getattr(track, name)]
    if shown:
        words.append(f"({', '.join(shown)})")
    return " ".join(words)


def _has(tracks, flags, none):
    if not tracks:
        return f"the source has no {none}"
    return "the source has: " + "; ".join(describe(t, flags) for t in tracks)


def _audio_has(info):
    return _has(info.audio, AUDIO_FLAGS, "audio at all")


def _subtitles_has(info):
    return _has(info.subtitles, SUBTITLE_FLAGS, "subtitles")


def choose_audio(info, audio_stream=None, audio_language=None):
    """(track, chosen_by) for a source's MediaInfo; (None, None) for a silent source that nobody
    asked audio of. chosen_by: audio_stream, audio_language, default, first."""
    if audio_stream is not None:
        if audio_stream >= len(info.audio):
            raise TrackChoiceError("configuration.audio_stream", f"no audio stream {audio_stream}: {_audio_has(info)}")
        return info.audio[audio_stream], "audio_stream"
    if audio_language is not None:
        wanted = language_code(audio_language)
        in_language = [a for a in info.audio if a.language == wanted]
        if not in_language:
            name = language_name(wanted) or wanted
            raise TrackChoiceError("configuration.audio_language",
                                   f"no audio track in {name} ({audio_language!r}): {_audio_has(info)}")
        main = [a for a in in_language if not (a.commentary or a.description)]
        return (main or in_language)[0], "audio_language"
    if not info.audio:
        return None, None
    default = next((a for a in info.audio if a.default), None)
    if default is not None:
        return default, "default"
    return next((a for a in info.audio if not a.commentary), info.audio[0]), "first"


def choose_subtitle(info, audio, subtitle_stream=None, burn=False, remux=False):
    """(track, burn, chosen_by) for the job: the subtitle track shown by default (None: none),
    whether it is drawn into the picture, and why it was chosen (subtitle_stream, forced)."""
    track, chosen_by = None, None
    if subtitle_stream is not None:
        if subtitle_stream >= len(info.subtitles):
            raise TrackChoiceError("configuration.subtitle_stream",
                                   f"no subtitle stream {subtitle_stream}: {_subtitles_has(info)}")
        track, chosen_by = info.subtitles[subtitle_stream], "subtitle_stream"
    elif audio is not None and audio.language:
        track = next((s for s in info.subtitles if s.forced and s.language == audio.language), None)
        chosen_by = track and "forced"
    if track is None:
        if burn:
            raise TrackChoiceError("configuration.burn_subtitles",
                                   f"no subtitle track to burn: name one with subtitle_stream ({_subtitles_has(info)})")
        return None, False, None
    burn = burn or not track.text
    if burn and remux:
        if chosen_by == "forced":  # not asked for: a remux shows it only where it can
            return (track, False, chosen_by) if track.text else (None, False, None)
        field = "configuration.burn_subtitles" if track.text else "configuration.subtitle_stream"
        raise TrackChoiceError(field, f"subtitle stream {track.stream} ({track.codec}) can only be drawn into the "
                                      "picture, which a remux does not touch: leave force_remux out")
    return track, burn, chosen_by
