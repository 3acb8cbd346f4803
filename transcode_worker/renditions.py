"""Which audio renditions a job offers, and in which groups (pure: no I/O, tested as a table).

Every audio track of the source is a rendition of its own (Apple's HLS authoring rules 9.7, 2.17):
the video segments carry no audio, and a player switches language, commentary or description by
fetching another playlist on the same grid, never by restarting the video.

- The stereo group ("stereo"): every track as stereo AAC (2.3: always offered), surround folded
  down (ffmpeg_command.DOWNMIX). Its variant comes first: a player that does not choose by
  channels (hls.js, Shaka, a browser, a phone) starts on it.
- A surround group per codec, where a track has more than two channels: AC-3 and E-AC-3 copied
  as they are (E-AC-3 also as AC-3, which every receiver decodes: "ac3" group), anything else as
  AAC in its own channels (6 or 8). Each such group has its own variant, CHANNELS="6" (or "8"), so
  an Apple TV on a receiver takes it; a track of two channels or fewer is in it as its stereo
  rendition (the same playlist), so every group offers every track.
- A dialogue rendition: where the chosen track has a centre channel, one more stereo rendition
  of it with the centre (dialogue) raised against the rest (DIALOGUE), marked
  public.accessibility.enhances-speech-intelligibility (2.28), in every group.

DEFAULT=YES is the track the job's audio rule chose (tracks.choose_audio): audio_stream,
audio_language, the file's default flag, else the first that is not commentary. Commentary is
AUTOSELECT=NO, so no player picks it by language alone; audio description is AUTOSELECT=YES and
marked public.accessibility.describes-video (2.12, 2.13), so a player whose viewer asked for it
finds it.
"""
from dataclasses import dataclass

from . import hls_names
from .media import language_name, language_tag
from .untrusted import hls_quoted, is_language_tag

STEREO_GROUP = "stereo"
AAC_LC = "mp4a.40.2"  # what FFmpeg's aac encoder writes (AAC-LC): we make it, so we know it
SURROUND_CODECS = {"ac3": "ac-3", "eac3": "ec-3"}  # copied as they are (TS and fMP4 carry both)
STEREO_BPS = 160_000
SURROUND_AAC_BPS = {6: 384_000, 8: 512_000}
AC3_BPS = 448_000  # E-AC-3 made AC-3 for receivers that decode only AC-3
COPY_BPS = 640_000  # a copied track whose file does not say its bit rate: AC-3's highest
DESCRIBES_VIDEO = "public.accessibility.describes-video"
ENHANCES_SPEECH = "public.accessibility.enhances-speech-intelligibility"
# Tracks offered, the first of the file's (a Blu-ray has at most 32; a hostile file may list
# thousands, each a line of the multivariant playlist)
MAX_TRACKS = 64
CENTRE_LAYOUTS = ("3.0", "3.1", "4.0", "4.1", "5.0", "5.1", "6.0", "6.1", "7.0", "7.1")


@dataclass(frozen=True)
class Rendition:
    """One audio playlist of a job: a source track made one way.

    kind: "stereo" (AAC, two channels, surround folded down), "dialogue" (the same with the
    centre raised), "copy" (the track as it is), "ac3" (encoded AC-3 in the track's channels),
    "surround" (AAC in the track's channels)."""
    track: object  # media.AudioStream
    kind: str
    channels: int
    codec: str  # RFC 6381
    bit_rate: int

    @property
    def name(self):
        """Its name in file names and URLs (hls_names.audio_*): audio<stream>[-kind]."""
        return hls_names.audio_rendition(self.track.stream, "" if self.kind == "stereo" else self.kind)


@dataclass(frozen=True)
class Group:
    """An EXT-X-MEDIA audio group: its id and the renditions in it, the video's variant naming it."""
    id: str
    renditions: tuple

    @property
    def channels(self):
        return max(r.channels for r in self.renditions)

    @property
    def codecs(self):
        """The codecs in the group, each once, in the order its renditions name them."""
        return tuple(dict.fromkeys(r.codec for r in self.renditions))

    @property
    def bit_rate(self):
        """The heaviest rendition's: BANDWIDTH counts the video plus it."""
        return max(r.bit_rate for r in self.renditions)


def has_centre(track):
    """True when the track has a centre channel to raise (a 3.0 to 7.1 layout; a file that says
    only its count: 5 channels or more)."""
    layout = (track.layout or "").split("(")[0]
    return layout in CENTRE_LAYOUTS if track.layout else (track.channels or 0) >= 5


def _stereo(track):
    return Rendition(track, "stereo", 2, AAC_LC, STEREO_BPS)


def _surround(track):
    """The track's surround renditions: [(group id, rendition)]."""
    channels = min(track.channels, 8)
    if track.codec in SURROUND_CODECS:
        copied = Rendition(track, "copy", channels, SURROUND_CODECS[track.codec], track.bit_rate or COPY_BPS)
        found = [(track.codec, copied)]
        if track.codec == "eac3":  # the AC-3 every receiver decodes beside it (Apple 2.8)
            found.append(("ac3", Rendition(track, "ac3", min(channels, 6), "ac-3", AC3_BPS)))
        return found
    channels = 8 if channels > 6 else 6
    return [("aac-surround", Rendition(track, "surround", channels, AAC_LC, SURROUND_AAC_BPS[channels]))]


def offered(media, chosen):
    """The source's tracks offered as renditions: its first MAX_TRACKS, and the chosen one."""
    return [t for t in media.audio if t.stream < MAX_TRACKS or chosen is not None and t.stream == chosen.stream]


def groups(media, chosen):
    """The audio groups of a job whose source is `media` (media.MediaInfo) and whose audio rule
    chose `chosen` (the DEFAULT): the stereo group first; [] for a silent source."""
    tracks = offered(media, chosen)
    if not tracks:
        return []
    stereo = [_stereo(track) for track in tracks]
    dialogue = [Rendition(chosen, "dialogue", 2, AAC_LC, STEREO_BPS)] if chosen is not None and has_centre(
        chosen) else []
    found = [Group(STEREO_GROUP, tuple(stereo + dialogue))]
    surround = {}
    for track in tracks:
        for group_id, rendition in _surround(track) if (track.channels or 0) > 2 else ():
            surround.setdefault(group_id, {})[track.stream] = rendition
    for group_id, by_track in surround.items():
        members = [by_track.get(track.stream) or stereo[i] for i, track in enumerate(tracks)]
        found.append(Group(group_id, tuple(members + dialogue)))
    return found


def every(media, chosen):
    """Each rendition a player may ask the job for, by name: those its groups offer, and the
    dialogue rendition of any track with a centre (a player still holding the multivariant
    playlist of before a change of the audio choice asks for the one it offered then)."""
    found = {r.name: r for group in groups(media, chosen) for r in group.renditions}
    for track in offered(media, chosen):
        if has_centre(track):
            rendition = Rendition(track, "dialogue", 2, AAC_LC, STEREO_BPS)
            found.setdefault(rendition.name, rendition)
    return found


def display_name(rendition):
    """NAME: the track's title, else its language's name (else "Audio <n>"), with what it is."""
    track = rendition.track
    name = track.title or language_name(track.language) or f"Audio {track.stream + 1}"
    marks = []
    if track.commentary and "comment" not in name.lower():
        marks.append("Commentary")
    if track.description and "descri" not in name.lower():
        marks.append("Audio description")
    if rendition.kind == "dialogue":
        marks.append("Clear dialogue")
    return f"{name} ({', '.join(marks)})" if marks else name


def media_lines(job_id, group, chosen):
    """The EXT-X-MEDIA lines of one group. A title and a language are the file's words: every
    quoted value goes through hls_quoted, and LANGUAGE is a language tag or "und"."""
    lines, names = [], set()
    for rendition in group.renditions:
        track = rendition.track
        name = display_name(rendition)
        while hls_quoted(name) in names:  # NAME is unique in its group, as written
            name = f"{name} ({track.stream + 1})"
        names.add(hls_quoted(name))
        tag = language_tag(track.language)
        default = chosen is not None and track.stream == chosen.stream and rendition.kind != "dialogue"
        characteristics = [DESCRIBES_VIDEO] if track.description else []
        if rendition.kind == "dialogue":
            characteristics.append(ENHANCES_SPEECH)
        attributes = ["TYPE=AUDIO", f"GROUP-ID={hls_quoted(group.id)}", f"NAME={hls_quoted(name)}",
                      f"LANGUAGE={hls_quoted(tag if is_language_tag(tag) else 'und')}",
                      f"DEFAULT={'YES' if default else 'NO'}",
                      f"AUTOSELECT={'NO' if track.commentary and not default else 'YES'}"]
        if characteristics:
            attributes.append(f"CHARACTERISTICS={hls_quoted(','.join(characteristics))}")
        attributes += [f'CHANNELS="{rendition.channels}"',
                       f"URI={hls_quoted(hls_names.audio_playlist(job_id, rendition.name))}"]
        lines.append("#EXT-X-MEDIA:" + ",".join(attributes))
    return lines
