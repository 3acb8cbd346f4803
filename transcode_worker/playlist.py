"""The media playlists players get: the whole film, from the job's grid, before FFmpeg has written
anything (pure functions, no I/O).

A VOD playlist never changes once answered (RFC 8216 6.2.1): it lists every segment of the grid
with its exact length (grid.py), EXT-X-ENDLIST from the first answer, and never an
EXT-X-DISCONTINUITY (every run writes the job's one clock). Only EXT-X-START follows the job's last
seek: where a player that loads the playlist afresh begins.
"""
ENDLIST_TAG = "#EXT-X-ENDLIST"


def start_tag(offset_s):
    """Where a player begins: the job's seek point, at its exact frame."""
    return f"#EXT-X-START:TIME-OFFSET={offset_s:.3f},PRECISE=YES"


def media_playlist(grid, uri, start_s=0.0, init_uri=None):
    """The VOD media playlist of `grid`, segment n named uri(n); `init_uri` for fMP4."""
    lines = ["#EXTM3U", f"#EXT-X-VERSION:{7 if init_uri else 3}", f"#EXT-X-TARGETDURATION:{grid.target_s}",
             "#EXT-X-MEDIA-SEQUENCE:0", "#EXT-X-PLAYLIST-TYPE:VOD", "#EXT-X-INDEPENDENT-SEGMENTS",
             start_tag(start_s)]
    if init_uri:
        lines.append(f'#EXT-X-MAP:URI="{init_uri}"')
    for number in range(len(grid)):
        lines += [f"#EXTINF:{grid.duration(number):.6f},", uri(number)]
    lines.append(ENDLIST_TAG)
    return "\n".join(lines) + "\n"


def duration(text):
    """Seconds of media a playlist lists (its EXTINF durations)."""
    return sum(float(line[8:].split(",")[0]) for line in text.splitlines() if line.startswith("#EXTINF:"))
