"""Strings a source file brings with it (its tags, as ffprobe reports them): what of them the
worker keeps, and how one is written where a quote or a line break would mean something.

Whoever made a file chose its tags: a track's language or title can hold quotes, line breaks,
terminal escapes, or text that reverses what is shown after it. At the entry (media.py) a
language is kept only when it is a well-formed language tag, a title loses its control
characters and is bounded, and FFmpeg's own names (codecs, profiles, pixel formats...) are kept
only when they look like one. At the exit every quoted playlist attribute goes through
hls_quoted, so a string that got past the entry still cannot break a line. Log lines print a
file's strings with %r.
"""
import re
import unicodedata

TITLE_MAX_CHARS = 200
# RFC 5646 4.4.1 asks every reader to take 35 characters; no tag a film carries comes near 64
LANGUAGE_TAG_MAX_CHARS = 64

# RFC 5646 2.1's ABNF of a language tag (2.2.9 "well-formed"; that a subtag is registered is not
# asked: "qaa" to "qtz" are for local use, and a new subtag must not make a film untagged)
_LANGTAG = re.compile(
    r"(?:[a-z]{2,3}(?:-[a-z]{3}){0,3}|[a-z]{4,8})"     # language, with up to 3 extlangs
    r"(?:-[a-z]{4})?"                                   # script
    r"(?:-(?:[a-z]{2}|[0-9]{3}))?"                      # region
    r"(?:-(?:[a-z0-9]{5,8}|[0-9][a-z0-9]{3}))*"         # variants
    r"(?:-[0-9a-wyz](?:-[a-z0-9]{2,8})+)*"              # extensions: a singleton, then subtags
    r"(?:-x(?:-[a-z0-9]{1,8})+)?"                       # private use
    r"|x(?:-[a-z0-9]{1,8})+",                           # a private-use tag alone
    re.IGNORECASE | re.ASCII,  # ASCII: "[a-z]" would take the Kelvin sign, which folds to "k"
)
_GRANDFATHERED = frozenset(
    "en-gb-oed i-ami i-bnn i-default i-enochian i-hak i-klingon i-lux i-mingo i-navajo i-pwn i-tao "
    "i-tay i-tsu sgn-be-fr sgn-be-nl sgn-ch-de art-lojban cel-gaulish no-bok no-nyn zh-guoyu zh-hakka "
    "zh-min zh-min-nan zh-xiang".split()
)
# FFmpeg's names of codecs, profiles ("High 4:4:4 Predictive", "DTS-HD MA + DTS:X"), pixel
# formats, channel layouts ("5.1(side)", "3 channels (FL+FR+LFE)"), colour properties and
# formats ("mov,mp4,m4a,3gp,3g2,mj2"): FFmpeg writes them, not the file, but a report that holds
# anything else is not believed
_FFMPEG_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._:,+()/&@-]{0,63}")

# Unicode's explicit directional embeddings, overrides and isolates (UAX #9: LRE RLE PDF LRO RLO,
# LRI RLI FSI PDI). One left open reverses the text after the title wherever a player shows it
# beside other words ("Trojan Source", CVE-2021-42574). The implicit marks stay: a Hebrew or
# Arabic title may need LRM, RLM or ALM to show its digits and punctuation the right way round,
# and a mark reorders nothing beyond its neighbours; so do ZWJ and ZWNJ, which Persian, Indic
# scripts and emoji need.
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
# Characters that end a line for some reader: Python's str.splitlines (which the m3u8 package
# reads playlists with) takes VT, FF, FS, GS, RS, NEL, U+2028 and U+2029 too; WebVTT and HLS
# take CR and LF. All are Cc, Zl or Zp.
_LINE_BREAKING = ("Cc", "Zl", "Zp")


def is_language_tag(tag):
    """True when `tag` is a well-formed language tag (RFC 5646; ISO 639 codes are such tags)."""
    return (isinstance(tag, str) and 0 < len(tag) <= LANGUAGE_TAG_MAX_CHARS
            and (_LANGTAG.fullmatch(tag) is not None or tag.lower() in _GRANDFATHERED))


def title(value):
    """A track's title as people may be shown it, or None when nothing is left: a control
    character (Cc), a line or paragraph separator becomes a space if it is one (tab, CR, LF...)
    and is dropped otherwise, bidi embeddings, overrides and isolates and unpaired surrogates are
    dropped, runs of spaces become one, and at most TITLE_MAX_CHARS characters are kept."""
    if not isinstance(value, str):
        return None
    kept = []
    for char in value:
        kind = unicodedata.category(char)
        if kind in _LINE_BREAKING:
            kept.append(" " if char.isspace() else "")
        elif kind != "Cs" and char not in BIDI_CONTROLS:
            kept.append(char)
    text = re.sub(" {2,}", " ", "".join(kept)).strip()
    return text[:TITLE_MAX_CHARS].rstrip() or None


def ffmpeg_name(value):
    """`value` when it looks like one of FFmpeg's names (a codec, profile, pixel format, channel
    layout, colour property or format), else None."""
    return value if isinstance(value, str) and _FFMPEG_NAME.fullmatch(value) else None


def hls_quoted(text):
    """`text` as an HLS quoted-string, quotes included (RFC 8216 4.2: no CR, LF or double quote
    inside): a double quote becomes an apostrophe, any character that ends a line for some reader
    (and any other control character) a space, an unpaired surrogate U+FFFD (it has no UTF-8)."""
    chars = []
    for char in str(text):
        kind = unicodedata.category(char)
        if kind in _LINE_BREAKING:
            char = " "
        elif kind == "Cs":
            char = "\ufffd"
        chars.append("'" if char == '"' else char)
    return '"' + "".join(chars) + '"'
