"""Small media the tests make with FFmpeg: every kind of source a movie library holds."""
import struct
import subprocess
from pathlib import Path

TEXT = "notes.txt"
CORRUPT = "corrupt.mp4"
LONG = "long ramp.mkv"  # 600 s; luma grows with time: 16 + 0.36 * t (a seek can be read off a frame)
LONG_SECONDS = 600


def luma_at(t):
    return 16 + 0.36 * t


def _ffmpeg(*args):
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y", *args],
                   check=True, timeout=300)


def _video(seconds, size="320x240", rate=25):
    return ["-f", "lavfi", "-i", f"testsrc2=size={size}:rate={rate}:duration={seconds}"]


# PAL 576i: 50 moving pictures a second woven into 25 interlaced frames, top field first
INTERLACE = ["-vf", "interlace", "-flags", "+ildct+ilme", "-top", "1"]


def _tone(seconds, layout="stereo", freq=440):
    return ["-f", "lavfi", "-i", f"sine=frequency={freq}:sample_rate=48000:duration={seconds},"
                                 f"aformat=channel_layouts={layout}"]


# -- real films: HDR made from a known SDR picture, several audio tracks, 5.1 ----------------
SDR_PICTURE = "testsrc2=size=1280x720:rate=24:duration=3"  # what the HDR sources were graded from
MASTERING = ("master-display=G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(10000000,1)"
             ":max-cll=1000,400")
# SDR white is 100 nits in PQ (BT.2390) and 75 % signal in HLG (BT.2408: 203 nits)
HDR_TRANSFERS = {"smpte2084": 100, "arib-std-b67": 203}
PQ_CONSTANTS = dict(m1=0.1593017578125, m2=78.84375, c1=0.8359375, c2=18.8515625, c3=18.6875)
RAMP_NITS = 1000  # the PQ ramp goes from black on the left to this on the right


def _graded(transfer, picture=SDR_PICTURE):
    """The input of `picture` (an SDR BT.709 source filter) graded to PQ or HLG, BT.2020, 10-bit."""
    return ["-f", "lavfi", "-i", f"{picture},zscale=tin=bt709:min=bt709:pin=bt709:rin=tv:t={transfer}"
                                 f":p=bt2020:m=bt2020nc:r=tv:npl={HDR_TRANSFERS[transfer]},format=yuv420p10le"]


def _hdr_encode(transfer):
    """HEVC 10-bit with the HDR10 (PQ) or HLG signalling and mastering metadata."""
    return ["-c:v", "libx265", "-preset", "ultrafast", "-g", "24",
            "-x265-params", f"log-level=error:colorprim=bt2020:transfer={transfer}:colormatrix=bt2020nc"
                            f":hdr10=1:{MASTERING}",
            "-color_primaries", "bt2020", "-color_trc", transfer, "-colorspace", "bt2020nc"]


def pq_ramp():
    """A horizontal ramp in PQ code values: x/width of the picture is x/width * RAMP_NITS."""
    c = PQ_CONSTANTS
    y = f"pow(X/W*{RAMP_NITS / 10000},{c['m1']})"
    pq = f"pow(({c['c1']}+{c['c2']}*{y})/(1+{c['c3']}*{y}),{c['m2']})"
    return ("color=black:size=640x360:rate=24:duration=2,format=yuv420p10le,"
            f"geq=lum='64+876*{pq}':cb=512:cr=512")


HDR10 = "hdr10 pq bt2020 hevc.mkv"
HLG = "hlg bt2020 hevc.mkv"
PQ_RAMP = "pq ramp 0-1000 nits.mkv"
# a film with three audio tracks, each its own tone (a player's pick is heard, not trusted)
FILM = "film three audio tracks.mkv"
FILM_TONES = {"English": 440, "Deutsch": 660, "Director's Commentary": 880}
# no track flagged default and the commentary first: the first that is not commentary plays
FILM_NO_DEFAULT = "film commentary first.mkv"
NO_DEFAULT_TONES = {"Commentary": 880, "English": 440}
# 5.1 in three codecs, each with three tracks at 1 kHz: dialogue only (centre, -6 dBFS), the
# same tone in the two fronts, and every channel at full scale
DOWNMIX = {"ac3": "5.1 ac3 downmix.mkv", "dca": "5.1 dts downmix.mkv", "flac": "5.1 flac downmix.mkv"}
DOWNMIX_TRACKS = {"centre": "FC=c0", "fronts": "FL=c0|FR=c0", "full": "FL=c0|FR=c0|FC=c0|LFE=c0|SL=c0|SR=c0"}
DOWNMIX_LEVELS = {"centre": 0.5, "fronts": 0.5, "full": 1.0}


def _film(tracks, default=None):
    """Video and one stereo tone per (title, frequency, language, commentary) track."""
    args = _video(3)
    for title, freq, _, _ in tracks:
        args += _tone(3, freq=freq)
    args += ["-map", "0:v", *[a for i in range(len(tracks)) for a in ("-map", f"{i + 1}:a")],
             "-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-c:a", "aac", "-default_mode", "passthrough"]
    for i, (title, _, language, commentary) in enumerate(tracks):
        disposition = "+".join(["default"] * (i == default) + ["comment"] * commentary) or "0"
        args += [f"-metadata:s:a:{i}", f"language={language}", f"-metadata:s:a:{i}", f"title={title}",
                 f"-disposition:a:{i}", disposition]
    return args


def _downmix(codec):
    args = _video(2)
    for track in DOWNMIX_TRACKS:
        args += ["-f", "lavfi", "-i", f"aevalsrc={DOWNMIX_LEVELS[track]}*sin(2*PI*1000*t):s=48000:d=2,"
                                      f"pan=5.1(side)|{DOWNMIX_TRACKS[track]}"]
    return [*args, "-map", "0:v", "-map", "1:a", "-map", "2:a", "-map", "3:a", "-c:v", "libx264",
            "-preset", "ultrafast", "-c:a", codec, "-strict", "-2"]


# Dolby Vision as ffprobe finds it: the HDR10 film with a Dolby Vision configuration box added to
# its sample entry (FFmpeg writes none): profile 8.1 (an HDR10 base layer every player shows) and
# profile 5 (none: Dolby's own colour, which only a Dolby Vision screen shows right)
DOVI_8 = "dolby vision 8.1.mp4"
DOVI_5 = "dolby vision 5.mp4"
DOVI = {DOVI_8: (8, 1), DOVI_5: (5, 0)}


def _box_path(data, start, end, path):
    """[(offset of each box on the way)] to the first box at `path` (a list of types)."""
    while start + 8 <= end:
        size, kind = struct.unpack(">I4s", data[start:start + 8])
        if kind.decode("latin-1") == path[0]:
            if len(path) == 1:
                return [start]
            # a sample description: 8 bytes of counts before its entries; an entry: 78 of fields
            skip = {"stsd": 8, "hvc1": 78}.get(path[0], 0)
            rest = _box_path(data, start + 8 + skip, start + size, path[1:])
            return rest and [start, *rest]
        start += size
    return None


def _with_dolby_vision(mp4, out, profile, compatibility):
    """Add a dvcC/dvvC box to the hvc1 sample entry of an MP4 whose moov comes last (so no
    chunk offset moves); every box around it grows by its size."""
    data = bytearray(mp4.read_bytes())
    path = _box_path(data, 0, len(data), ["moov", "trak", "mdia", "minf", "stbl", "stsd", "hvc1"])
    record = struct.pack(">BBHI16x", 1, 0, profile << 9 | 6 << 3 | 0b101, compatibility << 28)
    box = struct.pack(">I4s", 8 + len(record), b"dvvC" if profile > 7 else b"dvcC") + record
    entry = path[-1]
    insert_at = entry + struct.unpack(">I", data[entry:entry + 4])[0]
    for offset in path:
        struct.pack_into(">I", data, offset, struct.unpack(">I", data[offset:offset + 4])[0] + len(box))
    data[insert_at:insert_at] = box
    out.write_bytes(bytes(data))


# HDR10+: SMPTE 2094-40 dynamic metadata in an SEI message of every frame. Debian's x265 cannot
# write it, so it is added to the HDR10 encode here (ITU-T T.35, as HEVC carries it)
HDR10_PLUS = "hdr10+ hevc.mp4"


def _bits(*fields):
    """(value, width) pairs, most significant bit first, zero-padded to whole bytes."""
    bits = "".join(format(value, f"0{width}b") for value, width in fields)
    bits += "0" * (-len(bits) % 8)
    return bytes(int(bits[i:i + 8], 2) for i in range(0, len(bits), 8))


def _hdr10_plus_sei():
    """A prefix SEI NAL unit with one window of SMPTE 2094-40 metadata (Annex B, escaped)."""
    metadata = _bits((1, 8), (1, 2), (400, 27), (0, 1),  # version, windows, target display, no peak
                     (10000, 17), (10000, 17), (10000, 17), (5000, 17),  # maxscl r g b, average
                     (1, 4), (50, 7), (5000, 17),  # one percentile: the 50th
                     (0, 10), (0, 1), (0, 1), (0, 1))  # bright pixels, no peak, no curve, no weight
    payload = bytes([0xB5, 0x00, 0x3C, 0x00, 0x01, 0x04]) + metadata  # USA, SMPTE, 2094-40
    rbsp, escaped, zeros = bytes([4, len(payload)]) + payload + b"\x80", bytearray(), 0
    for byte in rbsp:
        if zeros >= 2 and byte <= 3:
            escaped.append(3)
            zeros = 0
        escaped.append(byte)
        zeros = zeros + 1 if byte == 0 else 0
    return b"\x00\x00\x00\x01" + bytes([39 << 1, 1]) + bytes(escaped)


def _with_hdr10_plus(annex_b):
    """The HEVC stream with the SEI before the first slice of every frame."""
    out, previous, sei = bytearray(), 0, _hdr10_plus_sei()
    position = annex_b.find(b"\x00\x00\x01")
    while position != -1:
        nal_type = annex_b[position + 3] >> 1 & 0x3F
        if nal_type < 32 and annex_b[position + 5] & 0x80:  # a slice, the first of its frame
            cut = position - 1 if annex_b[position - 1] == 0 else position
            out += annex_b[previous:cut] + sei
            previous = cut
        position = annex_b.find(b"\x00\x00\x01", position + 3)
    return bytes(out + annex_b[previous:])


def _make_hdr10_plus(folder):
    raw = folder.parent / "hdr10.hevc"
    _ffmpeg(*_graded("smpte2084"), *_hdr_encode("smpte2084"), "-f", "hevc", str(raw))
    raw.write_bytes(_with_hdr10_plus(raw.read_bytes()))
    _ffmpeg("-framerate", "24", "-f", "hevc", "-i", str(raw), "-c", "copy", "-tag:v", "hvc1", str(folder / HDR10_PLUS))


# Subtitles: a film whose every frame says which it is (mean luma 16 + its number, 20 fps) and
# whose English track has a cue every second, so a cue can be checked against the frame it
# shows on; a forced French track, a styled ASS track (italics, at the top), English and French
# audio.
SUBTITLED = "subtitled film.mkv"
SUBTITLED_FPS, SUBTITLED_SECONDS = 20, 10
CUES = [(k + 0.10, k + 0.70, f"cue {k}") for k in range(SUBTITLED_SECONDS)]  # the English track
FORCED_CUES = [(2.0, 4.0, "forcé un"), (6.0, 8.5, "forcé deux")]
ASS_CUE = (3.0, 5.0, "stylé")
SUBTITLE_TRACKS = ["English", "Français (forcé)", "Styled"]  # titles, in the file's order


def frame_number(luma):
    """Which frame of SUBTITLED a mean luma shows."""
    return round(luma - 16)


def _srt(cues):
    stamp = lambda t: f"00:00:{int(t):02d},{round(t % 1 * 1000):03d}"  # noqa: E731
    return "".join(f"{i}\n{stamp(a)} --> {stamp(b)}\n{text}\n\n" for i, (a, b, text) in enumerate(cues, 1))


ASS = """[Script Info]
ScriptType: v4.00+
PlayResX: 320
PlayResY: 240

[V4+ Styles]
Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, BackColour, Bold, Italic, Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, Shadow, Alignment, MarginL, MarginR, MarginV, Encoding
Style: Default,DejaVu Sans,28,&H0000FFFF,&H000000FF,&H00000000,&H00000000,0,0,0,0,100,100,0,0,1,2,0,2,10,10,10,1

[Events]
Format: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text
Dialogue: 0,0:00:03.00,0:00:05.00,Default,,0,0,0,,{\\an5}{\\i1}stylé{\\i0}
"""


def _make_subtitled(folder):
    tmp = folder.parent
    (tmp / "cues.srt").write_text(_srt(CUES), encoding="utf-8")
    (tmp / "forced.srt").write_text(_srt(FORCED_CUES), encoding="utf-8")
    (tmp / "styled.ass").write_text(ASS, encoding="utf-8")
    seconds = SUBTITLED_SECONDS
    _ffmpeg("-f", "lavfi", "-i", f"color=black:size=320x240:rate={SUBTITLED_FPS}:duration={seconds},"
                                 "geq=lum='16+N':cb=128:cr=128",
            "-i", str(tmp / "cues.srt"), "-i", str(tmp / "forced.srt"), "-i", str(tmp / "styled.ass"),
            *_tone(seconds), *_tone(seconds, freq=550),
            "-map", "0:v", "-map", "4:a", "-map", "5:a", "-map", "1:s", "-map", "2:s", "-map", "3:s",
            "-c:v", "libx264", "-preset", "ultrafast", "-crf", "10", "-g", str(SUBTITLED_FPS), "-c:a", "aac",
            "-c:s:0", "srt", "-c:s:1", "srt", "-c:s:2", "ass",
            "-metadata:s:a:0", "language=eng", "-metadata:s:a:1", "language=fre",
            *[arg for i, (title, language) in enumerate(zip(SUBTITLE_TRACKS, ("eng", "fre", "eng")))
              for arg in (f"-metadata:s:s:{i}", f"title={title}", f"-metadata:s:s:{i}", f"language={language}")],
            "-disposition:s:0", "0", "-disposition:s:1", "forced", "-disposition:s:2", "0",
            *_font_attachment(), "-default_mode", "passthrough", str(folder / SUBTITLED))


FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")  # fonts-dejavu-core, which libass brings


def _font_attachment():
    """The font the styled track names, attached to the file as films carry theirs."""
    if not FONT.exists():
        return []
    return ["-attach", str(FONT), "-metadata:s:t:0", "mimetype=application/x-truetype-font"]


# A picture subtitle track (PGS, as on Blu-ray): FFmpeg can write none from text, so the .sup
# stream is written here, a white box in the lower middle at these times, on the same film
PGS_FILM = "pgs film.mkv"
PGS_BOXES = [(2.0, 4.0), (6.0, 7.0)]
PGS_BOX = (120, 180, 80, 30)  # x, y, width, height on the 320x240 picture


def _pgs_segment(kind, pts, payload):
    return b"PG" + struct.pack(">IIBH", round(pts * 90000), 0, kind, len(payload)) + payload


def _pgs_display_set(pts, number, shown):
    """A presentation of the box (shown) or of nothing (the box cleared)."""
    x, y, width, height = PGS_BOX
    window = struct.pack(">BBHHHH", 1, 0, x, y, width, height)
    if not shown:
        composition = struct.pack(">HHBHBBBB", 320, 240, 0x10, number, 0x00, 0, 0, 0)
        return _pgs_segment(0x16, pts, composition) + _pgs_segment(0x17, pts, window) + _pgs_segment(0x80, pts, b"")
    composition = struct.pack(">HHBHBBBB", 320, 240, 0x10, number, 0x80, 0, 0, 1) + struct.pack(">HBBHH", 0, 0, 0, x, y)
    palette = struct.pack(">BB", 0, 0) + bytes([0, 16, 128, 128, 0, 1, 235, 128, 128, 255])
    line = bytes([0x00, 0xC0 | width >> 8, width & 0xFF, 1, 0x00, 0x00])  # a run of colour 1, end of line
    rle = line * height
    picture = struct.pack(">HBB", 0, 0, 0xC0) + (len(rle) + 4).to_bytes(3, "big") + struct.pack(">HH", width, height) + rle
    return b"".join([_pgs_segment(0x16, pts, composition), _pgs_segment(0x17, pts, window),
                     _pgs_segment(0x14, pts, palette), _pgs_segment(0x15, pts, picture), _pgs_segment(0x80, pts, b"")])


def _make_pgs_film(folder):
    sup = folder.parent / "boxes.sup"
    # an empty presentation at 0 first: FFmpeg counts an input's time from its first timestamp
    sets = [_pgs_display_set(0.0, 0, False)] + [
        _pgs_display_set(t, 1 + 2 * i + shown, shown) for i, box in enumerate(PGS_BOXES)
        for shown, t in ((1, box[0]), (0, box[1]))]
    sup.write_bytes(b"".join(sets))
    _ffmpeg("-f", "lavfi", "-i", f"color=black:size=320x240:rate={SUBTITLED_FPS}:duration={SUBTITLED_SECONDS},"
                                 "geq=lum='16+N':cb=128:cr=128",
            "-i", str(sup), "-map", "0:v", "-map", "1:s", "-c:v", "libx264", "-preset", "ultrafast", "-crf", "10",
            "-g", str(SUBTITLED_FPS), "-c:s", "copy", "-metadata:s:s:0", "language=eng", str(folder / PGS_FILM))


H264 = "h264 aac with spaces.mp4"
DVB = "dvb recording 576i.ts"
SOURCES = {
    # name: ffmpeg arguments after the inputs' declaration (the output name is appended)
    H264: [*_video(6), *_tone(6), "-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-c:a", "aac"],
    "hevc 10bit ac3 5.1 ñandú.mkv": [
        *_video(5), *_tone(5, "5.1"), "-c:v", "libx265", "-preset", "ultrafast", "-pix_fmt", "yuv420p10le",
        "-x265-params", "log-level=error", "-c:a", "ac3"],
    "dts multi-audio subs.mkv": [
        *_video(5), *_tone(5, "5.1", 300), *_tone(5, "stereo", 600), "-i", "{subs}",
        "-map", "0:v", "-map", "1:a", "-map", "2:a", "-map", "3:s",
        "-c:v", "libx264", "-preset", "ultrafast", "-c:a:0", "dca", "-strict", "-2", "-c:a:1", "aac",
        "-c:s", "srt", "-disposition:a:1", "default"],
    "silent 無音.mp4": [*_video(5), "-c:v", "libx264", "-preset", "ultrafast"],
    # a TV recording: interlaced H.264 and AC3 in MPEG-TS
    DVB: [*_video(5, "720x576", rate=50), *_tone(5), *INTERLACE, "-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-c:a", "ac3"],
    # a 4K HDR film in miniature: HDR10 HEVC 10-bit with its mastering metadata, AAC
    HDR10: [*_graded("smpte2084"), *_tone(3), *_hdr_encode("smpte2084"), "-c:a", "aac"],
    FILM: _film([(t, f, lang, "Comment" in t) for (t, f), lang in zip(FILM_TONES.items(), ("eng", "ger", "eng"))],
                default=0),
}
# sources of the real-film tests only (tests/test_real_films.py)
# Audio renditions: English 5.1 AC-3 (the default: dialogue at 440 Hz in the centre, music at
# 880 Hz in the fronts), German, an English commentary, an English audio description, each its
# own tone (a rendition's track is heard, not trusted)
RENDITIONS = "renditions four tracks 5.1.mkv"
RENDITIONS_SECONDS = 20
DIALOGUE_HZ, MUSIC_HZ = 440, 880
RENDITION_TONES = {1: 550, 2: 660, 3: 770}  # stream -> its tone (stream 0: the 5.1 track)


def _renditions_film():
    seconds = RENDITIONS_SECONDS
    music = f"0.25*sin(2*PI*{MUSIC_HZ}*t)"
    args = [*_video(seconds), "-f", "lavfi", "-i",
            f"aevalsrc=exprs={music}|{music}|0.5*sin(2*PI*{DIALOGUE_HZ}*t)|0|0|0:c=5.1(side):s=48000:d={seconds}"]
    for freq in RENDITION_TONES.values():
        args += _tone(seconds, freq=freq)
    args += ["-map", "0:v", *[a for i in range(4) for a in ("-map", f"{i + 1}:a")], "-c:v", "libx264",
             "-preset", "ultrafast", "-g", "25", "-c:a:0", "ac3", "-c:a:1", "aac", "-c:a:2", "aac", "-c:a:3", "aac",
             "-default_mode", "passthrough"]
    for i, (language, title, disposition) in enumerate([("eng", "English", "default"), ("deu", "Deutsch", "0"),
                                                        ("eng", "Director's Commentary", "comment"),
                                                        ("eng", None, "visual_impaired")]):
        args += [f"-metadata:s:a:{i}", f"language={language}", f"-disposition:a:{i}", disposition]
        if title:
            args += [f"-metadata:s:a:{i}", f"title={title}"]
    return args


# Lip sync: a white frame every 2 s (frames 0, 50, 100, ...) and a 40 ms beep starting at the
# same instant, 1 kHz in the English track, 2 kHz in the French
FLASH_BEEP = "flash beep.mkv"
FLASH_EVERY_S = 2


def _flash_beep():
    seconds = 10
    beep = f"if(lt(mod(t\\,{FLASH_EVERY_S})\\,0.04)\\,0.5*sin(2*PI*{{hz}}*t)\\,0)"
    args = ["-f", "lavfi", "-i", f"color=black:size=320x240:rate=25:duration={seconds},"
                                 f"geq=lum='if(eq(mod(N\\,{FLASH_EVERY_S * 25})\\,0)\\,235\\,16)':cb=128:cr=128"]
    for hz in (1000, 2000):
        args += ["-f", "lavfi", "-i", f"aevalsrc={beep.format(hz=hz)}:s=48000:d={seconds}"]
    return [*args, "-map", "0:v", "-map", "1:a", "-map", "2:a", "-c:v", "libx264", "-preset", "ultrafast",
            "-g", "25", "-c:a", "aac", "-metadata:s:a:0", "language=eng", "-metadata:s:a:1", "language=fra"]


EAC3 = "5.1 eac3.mkv"  # E-AC-3 5.1: copied, and made AC-3 beside it
# a second track that starts 4 s into the film (a commentary after a silent intro): 660 Hz
LATE_TRACK = "late second track.mkv"
LATE_S = 4

FILMS = {
    RENDITIONS: _renditions_film(),
    EAC3: [*_video(4), *_tone(4, layout="5.1(side)"), "-c:v", "libx264", "-preset", "ultrafast", "-g", "25",
           "-c:a", "eac3"],
    LATE_TRACK: [*_video(10), *_tone(10), "-itsoffset", str(LATE_S), *_tone(6, freq=660), "-map", "0:v", "-map", "1:a",
                 "-map", "2:a", "-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-c:a", "aac"],
    FLASH_BEEP: _flash_beep(),
    HLG: [*_graded("arib-std-b67"), *_hdr_encode("arib-std-b67")],
    PQ_RAMP: ["-f", "lavfi", "-i", pq_ramp(), *_hdr_encode("smpte2084")],
    FILM_NO_DEFAULT: _film([(t, f, "eng", "Comment" in t) for t, f in NO_DEFAULT_TONES.items()]),
    **{name: _downmix(codec) for codec, name in DOWNMIX.items()},
}
# a DVD's video: interlaced MPEG-2, which a remux cannot give to HLS players (a transcode can)
DVD = "dvd mpeg2 576i.mpg"


def make_library(folder):
    """Write every test source into `folder`; returns the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    subs = folder.parent / "subs.srt"
    subs.write_text("1\n00:00:00,500 --> 00:00:03,000\nHello\n")
    for name, args in {**SOURCES, **FILMS}.items():
        _ffmpeg(*[a.replace("{subs}", str(subs)) for a in args], str(folder / name))
    _ffmpeg("-f", "lavfi", "-i",
            f"color=c=black:size=32x18:rate=25:duration={LONG_SECONDS},"
            "geq=lum='16+0.36*T':cb=128:cr=128,scale=320:180",
            *_tone(LONG_SECONDS), "-c:v", "libx264", "-preset", "ultrafast", "-g", "50", "-c:a", "aac",
            "-metadata:s:a:0", "language=eng", str(folder / LONG))
    _ffmpeg(*_video(5, "720x576", rate=50), *_tone(5), *INTERLACE, "-c:v", "mpeg2video", "-b:v", "4M", "-c:a", "ac3", str(folder / DVD))
    plain = folder.parent / "hdr10 for dolby vision.mp4"
    _ffmpeg("-i", str(folder / HDR10), "-map", "0:v", "-c", "copy", "-tag:v", "hvc1", str(plain))
    for name, (profile, compatibility) in DOVI.items():
        _with_dolby_vision(plain, folder / name, profile, compatibility)
    _make_hdr10_plus(folder)
    _make_subtitled(folder)
    _make_pgs_film(folder)
    _corrupt_copy(folder / H264, folder / CORRUPT)
    (folder / TEXT).write_text("not a movie\n")
    return folder


def _corrupt_copy(good, bad):
    """Same header as a good file (ffprobe accepts it), garbage where the frames are."""
    tmp = bad.with_suffix(".faststart.mp4")
    _ffmpeg("-i", str(good), "-c", "copy", "-movflags", "+faststart", str(tmp))
    data = bytearray(tmp.read_bytes())
    start = data.find(b"mdat") + 8
    for i in range(start, len(data)):
        data[i] = (i * 7919) % 251
    bad.write_bytes(bytes(data))
    tmp.unlink()


# -- a film whose pictures tell their frame number --------------------------------------------
COUNTED_FPS = (24000, 1001)
COUNTED_SIZE = (160, 96)
COUNTED_BITS = 16  # vertical bars, least significant on the left: white where the bit is set
COUNTED_KEYFRAMES = (0, 1.0, 2.5, 7.0, 8.0, 14.5, 16.0, 20.0, 26.5, 27.5, 33.0, 38.0, 40.0, 46.5, 47.5, 53.0)


def make_counted(path, seconds=60, keyframes=COUNTED_KEYFRAMES):
    """H.264 + AAC at 24000/1001 fps whose frame n shows n in binary bars, with keyframes 1 to
    6.5 s apart (only where `keyframes` says: a remux's grid is made of them)."""
    width, height = COUNTED_SIZE
    bar = width // COUNTED_BITS
    rate = f"{COUNTED_FPS[0]}/{COUNTED_FPS[1]}"
    _ffmpeg("-f", "lavfi", "-i", f"color=c=black:s={width}x{height}:r={rate}:d={seconds}",
            "-f", "lavfi", "-i", f"sine=f=440:r=48000:d={seconds}",
            "-vf", f"geq=lum='if(bitand(N\\,pow(2\\,floor(X/{bar}))),235,16)':cb=128:cr=128",
            "-c:v", "libx264", "-preset", "veryfast", "-g", "1000", "-sc_threshold", "0", "-pix_fmt", "yuv420p",
            "-force_key_frames", ",".join(str(k) for k in keyframes), "-c:a", "aac", "-shortest", str(path))
    return path


def counted_frame(gray):
    """The frame number a picture of make_counted shows (gray: its luma plane, row by row)."""
    width, height = COUNTED_SIZE
    bar = width // COUNTED_BITS
    row = gray[(height // 2) * width:(height // 2 + 1) * width]
    return sum(1 << i for i in range(COUNTED_BITS) if row[i * bar + bar // 2] > 128)
