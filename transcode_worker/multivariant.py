"""The multivariant playlist of a job (``<job>.m3u8``): one variant, described the way Apple's
HLS authoring rules ask, so a player knows what it will decode before it downloads any media.

CODECS is read from what FFmpeg wrote, never guessed from the command: the H.264 SPS and AAC
ADTS header in the first MPEG-TS segment, the avcC / hvcC / esds boxes of an fMP4 init segment
(RFC 6381 and ISO/IEC 14496-15 annex E spell the strings). RESOLUTION and FRAME-RATE come from
the source and the command (the scale rule is ffmpeg_command.output_size); BANDWIDTH is an
upper bound of a segment's bit rate, AVERAGE-BANDWIDTH the expected mean:
- a transcode: the video bit rate (also its -maxrate) plus the heaviest audio rendition of the
  variant's group (renditions.py), with the container's overhead; the peak allows a segment the encoder's whole buffer (-bufsize, 2 s of bit rate) on
  top of its length in bit rate;
- a remux: the source's video bit rate (the file's, when the stream does not say) plus the
  audio's;

The video segments carry no audio: the audio codecs in CODECS are those of the variant's audio
group, which the worker makes itself (AAC-LC from FFmpeg's encoder, AC-3) or copies (AC-3, E-AC-3). the peak, which only a pass over the whole file could tell, is taken as twice that.
"""
import math
import struct

from . import containers, hls_names, renditions
from .ffmpeg_command import output_size
from .media import language_name, language_tag
from .untrusted import hls_quoted, is_language_tag

# What is read of the first segment: its tables, the first video and audio packets and the
# parameter sets in them come first (a 1080p remux's segment is megabytes).
READ_BYTES = 1 << 20
TS_OVERHEAD, FMP4_OVERHEAD = 1.10, 1.03
REMUX_PEAK_FACTOR = 2.0
ENCODER_BUFFER_S = 2.0  # -bufsize is twice -b:v (ffmpeg_command.video_args)
# MPEG-TS stream types (ISO/IEC 13818-1) of what a job can write
TS_H264, TS_HEVC, TS_AAC, TS_MP3 = 0x1B, 0x24, 0x0F, (0x03, 0x04)
MP3_CODEC = "mp4a.40.34"
SUBTITLE_GROUP = "subs"


def codecs_of_segment(data, fmp4):
    """RFC 6381 codec strings, video first, of an MPEG-TS segment or an fMP4 init segment."""
    return _codecs_of_init(data) if fmp4 else _codecs_of_ts(data)


# -- MPEG-TS ---------------------------------------------------------------------------------
def _codecs_of_ts(data):
    packets = list(containers.ts_packets(data))
    codecs = []
    for stream_type, pid in containers.ts_streams(data):
        payload = containers.pes_payload(packets, pid)
        if stream_type == TS_H264:
            codecs.append(_avc_from_annex_b(payload))
        elif stream_type == TS_AAC:
            codecs.append(_aac_from_adts(payload))
        elif stream_type in TS_MP3:
            codecs.append(MP3_CODEC)
    return [c for c in sorted(codecs, key=_video_first) if c]


def _avc_from_annex_b(stream):
    """avc1.PPCCLL from the first SPS NAL unit: profile_idc, constraint flags, level_idc."""
    position = 0
    while (position := stream.find(b"\x00\x00\x01", position)) != -1 and position + 6 < len(stream):
        if stream[position + 3] & 0x1F == 7:
            return "avc1." + stream[position + 4:position + 7].hex()
        position += 3
    return None


def _aac_from_adts(stream):
    """mp4a.40.<audio object type> from the first ADTS header (its profile is the type less 1)."""
    if len(stream) >= 3 and stream[0] == 0xFF and stream[1] & 0xF0 == 0xF0:
        return f"mp4a.40.{(stream[2] >> 6) + 1}"
    return None


def _video_first(codec):
    return 0 if codec and codec.startswith(("avc", "hvc", "hev")) else 1


# -- fMP4 (ISO BMFF) --------------------------------------------------------------------------
# Sample entries: bytes before their child boxes (ISO/IEC 14496-12 VisualSampleEntry, AudioSampleEntry)
_VISUAL_ENTRY, _AUDIO_ENTRY = 78, 28


def _codecs_of_init(data):
    moov = containers.child(data, 0, len(data), "moov")
    codecs = []
    for kind, start, end in containers.boxes(data, *moov) if moov else ():
        stsd = containers.child(data, start, end, "mdia", "minf", "stbl", "stsd") if kind == "trak" else None
        for entry, entry_start, entry_end in containers.boxes(data, stsd[0] + 8, stsd[1]) if stsd else ():
            if entry in ("hvc1", "hev1"):
                config = containers.child(data, entry_start + _VISUAL_ENTRY, entry_end, "hvcC")
                codecs.append(config and _hevc_codec(entry, data[config[0]:config[1]]))
            elif entry in ("avc1", "avc3"):
                config = containers.child(data, entry_start + _VISUAL_ENTRY, entry_end, "avcC")
                codecs.append(config and f"{entry}.{data[config[0] + 1:config[0] + 4].hex()}")
            elif entry == "mp4a":
                config = containers.child(data, entry_start + _AUDIO_ENTRY, entry_end, "esds")
                codecs.append(config and _mp4a_codec(data[config[0] + 4:config[1]]))
    return [c for c in sorted(codecs, key=_video_first) if c]


def _hevc_codec(entry, hvcc):
    """hvc1.<space><profile>.<compatibility, bits reversed>.<tier><level>[.<constraint bytes>]."""
    space, tier, profile = hvcc[1] >> 6, hvcc[1] >> 5 & 1, hvcc[1] & 0x1F
    compatibility = int(f"{struct.unpack('>I', hvcc[2:6])[0]:032b}"[::-1], 2)
    constraints = list(hvcc[6:12])
    while constraints and constraints[-1] == 0:
        constraints.pop()
    parts = [entry, f"{'' if space == 0 else 'ABC'[space - 1]}{profile}", f"{compatibility:X}",
             f"{'H' if tier else 'L'}{hvcc[12]}", *(f"{b:X}" for b in constraints)]
    return ".".join(parts)


def _descriptor(data, position):
    """(tag, payload start, payload end) of the MPEG-4 descriptor at position."""
    tag, size, position = data[position], 0, position + 1
    for _ in range(4):
        byte = data[position]
        position += 1
        size = size << 7 | byte & 0x7F
        if not byte & 0x80:
            break
    return tag, position, position + size


def _mp4a_codec(esds):
    """mp4a.<objectTypeIndication>[.<audio object type>] from an esds box's descriptors."""
    tag, start, end = _descriptor(esds, 0)
    if tag != 3:
        return None
    flags = esds[start + 2]
    start += 3 + (2 if flags & 0x80 else 0) + (1 + esds[start + 3] if flags & 0x40 else 0) + (2 if flags & 0x20 else 0)
    tag, start, end = _descriptor(esds, start)
    if tag != 4:
        return None
    object_type = esds[start]
    if object_type == 0x6B:
        return MP3_CODEC
    tag, info_start, _ = _descriptor(esds, start + 13)
    if object_type != 0x40 or tag != 5:
        return f"mp4a.{object_type:X}"
    audio_object = esds[info_start] >> 3
    if audio_object == 31:
        audio_object = 32 + ((esds[info_start] & 7) << 3 | esds[info_start + 1] >> 5)
    return f"mp4a.40.{audio_object}"


# -- the playlist ------------------------------------------------------------------------------
def bandwidths(spec, output, audio=0):
    """(BANDWIDTH, AVERAGE-BANDWIDTH) in bits per second, of the video and `audio` (the heaviest
    rendition of its group: renditions.Group.bit_rate)."""
    overhead = FMP4_OVERHEAD if output.fmp4 else TS_OVERHEAD
    if spec.force_remux:
        # (the file's bit rate less its audio tracks', where the video's is not said)
        in_file = sum(a.bit_rate or 0 for a in spec.media.audio)
        video = spec.media.video.bit_rate or max((spec.media.bit_rate or 0) - in_file, 0) or spec.bitrate_bps
        average = (video + audio) * overhead
        return math.ceil(average * REMUX_PEAK_FACTOR), math.ceil(average)
    peak_video = spec.bitrate_bps * (1 + ENCODER_BUFFER_S / output.segment_s)
    return math.ceil((peak_video + audio) * overhead), math.ceil((spec.bitrate_bps + audio) * overhead)


def video_range(spec):
    """VIDEO-RANGE of the job's output: SDR once tone-mapped, the source's in a remux."""
    return "SDR" if spec.tone_mapped else spec.media.video.video_range


def subtitle_renditions(spec):
    """EXT-X-MEDIA lines of the source's text subtitle tracks: one WebVTT rendition each, named
    by its title (else its language's name, else its number; NAME must be unique), DEFAULT on
    the job's chosen track unless it is burned into the picture, FORCED where the source says.
    A title and a language are the file's words: every quoted value goes through hls_quoted, and
    LANGUAGE is written only when it is a language tag (media.py checked both already)."""
    lines, names = [], set()
    for track in (s for s in spec.media.subtitles if s.text):
        name = track.title or language_name(track.language) or f"Subtitles {track.stream}"
        while hls_quoted(name) in names:  # unique as written: 'a"b' and "a'b" are one NAME
            name = f"{name} ({track.stream})"
        names.add(hls_quoted(name))
        default = track == spec.subtitle and not spec.burn
        attributes = ["TYPE=SUBTITLES", f"GROUP-ID={hls_quoted(SUBTITLE_GROUP)}", f"NAME={hls_quoted(name)}"]
        if is_language_tag(tag := language_tag(track.language)):
            attributes.append(f"LANGUAGE={hls_quoted(tag)}")
        attributes += [f"DEFAULT={'YES' if default else 'NO'}", "AUTOSELECT=YES",
                       f"FORCED={'YES' if track.forced else 'NO'}",
                       f"URI={hls_quoted(hls_names.subtitle_playlist(spec.job_id, track.stream))}"]
        lines.append("#EXT-X-MEDIA:" + ",".join(attributes))
    return lines


def playlist_text(spec, output, codecs, subtitles=False):
    """The multivariant playlist, given the codec strings of the video FFmpeg wrote; `subtitles`:
    the source's text tracks are offered (their extraction has begun). `spec`: the job's command
    (its audio choice is the DEFAULT rendition). One variant per audio group (renditions.py), the
    stereo group's first; a silent source's one variant names no group."""
    subtitle_lines = subtitle_renditions(spec) if subtitles else []
    groups = renditions.groups(spec.media, spec.audio)
    audio_lines = [line for group in groups for line in renditions.media_lines(spec.job_id, group, spec.audio)]
    variants = []
    for group in groups or [None]:
        audio_codecs = list(group.codecs) if group is not None else []
        peak, average = bandwidths(spec, output, group.bit_rate if group is not None else 0)
        attributes = [f"BANDWIDTH={peak}", f"AVERAGE-BANDWIDTH={average}"]
        if codecs:  # none read (never seen): better no CODECS than wrong ones
            attributes.append(f"CODECS={hls_quoted(','.join(dict.fromkeys([*codecs, *audio_codecs])))}")
        if size := output_size(spec):
            attributes.append(f"RESOLUTION={size[0]}x{size[1]}")
        if spec.media.video.frame_rate:
            attributes.append(f"FRAME-RATE={spec.media.video.frame_rate:.3f}")
        attributes.append(f"VIDEO-RANGE={video_range(spec)}")
        if group is not None:
            attributes.append(f"AUDIO={hls_quoted(group.id)}")
        if subtitle_lines:
            attributes.append(f"SUBTITLES={hls_quoted(SUBTITLE_GROUP)}")
        variants += ["#EXT-X-STREAM-INF:" + ",".join(attributes), output.media_playlist]
    return "\n".join([
        "#EXTM3U", "#EXT-X-VERSION:7" if output.fmp4 else "#EXT-X-VERSION:3", "#EXT-X-INDEPENDENT-SEGMENTS",
        *audio_lines, *subtitle_lines, *variants, "",
    ])
