"""HLS Content Steering for a stream that outlives its worker (pure: no I/O).

A player opens ``/streams/<job>.m3u8`` on the orchestrator: the multivariant playlist of the
worker that holds the job, on one pathway, the pool's: its media playlists are the orchestrator's
(``/streams/<job>/<name>``), whose segments the orchestrator redirects to the worker that holds
the job now (a player without steering, or one that has not loaded the manifest yet, plays
there). The steering manifest the player loads (and reloads every TTL) clones that pathway onto
every worker that could carry the job (``PATHWAY-CLONES``, each variant's and rendition's URI given
by its stable id) and lists them in order (``PATHWAY-PRIORITY``), the job's holder first, the pool
last: a steering player fetches straight from the holder, and when it cannot reach it (refused, a
4xx, or its retries spent on a 5xx) moves to the next pathway by itself (hls.js, Apple's players).
There, the worker that does not hold the job asks the orchestrator for it (a claim): it takes the
job when its holder is gone, or redirects the player to the holder when it is not.

Segment k of a job is the same pictures at the same times on any worker (the grid and the clock
are the source's and the command's), so the player's next segment from another worker simply
follows the last one.
"""
import re

POOL = "pool"  # the pathway through the orchestrator (a worker of that id is never a clone of it)
STEERING_TTL_S = 5  # how often a player asks again where to go (a death note moves it within this)
STABLE_ID = re.compile(r'"[A-Za-z0-9+/=._-]{1,256}"')  # a stable id as HLS allows it, quoted
ATTRIBUTE = re.compile(r'([A-Z0-9-]+)=("[^"\r\n]*"|[^,\r\n]*)')


def attribute_list(text):
    """[(name, value as written)] of an HLS attribute list (RFC 8216 4.2); ValueError when it is not one."""
    pairs, at = [], 0
    while at < len(text):
        match = ATTRIBUTE.match(text, at)
        if match is None:
            raise ValueError(f"not an attribute list: {text[at:at + 40]!r}")
        pairs.append((match.group(1), match.group(2)))
        at = match.end()
        if at < len(text):
            if text[at] != ",":
                raise ValueError(f"not an attribute list: {text[at:at + 40]!r}")
            at += 1
    return pairs


def _written(pairs):
    return ",".join(f"{name}={value}" for name, value in pairs)


def steered_multivariant(text, worker_url, pathway, steering_uri):
    """The worker's multivariant playlist `text` for a steered player: URIs absolute on
    `worker_url`, every variant on `pathway`, each variant and rendition with a stable id (the
    name the worker gave it), the steering manifest at `steering_uri`."""
    base = worker_url.rstrip("/") + "/"
    source = text.splitlines()
    lines = []
    for at, line in enumerate(source):
        tag, colon, rest = line.partition(":")
        if tag == "#EXT-X-MEDIA" and colon:
            pairs = [pair for pair in attribute_list(rest) if pair[0] != "STABLE-RENDITION-ID"]
            uri = dict(pairs).get("URI")
            if uri is not None:
                if not STABLE_ID.fullmatch(uri):
                    raise ValueError(f"a rendition URI that cannot be a stable id: {uri[:80]}")
                pairs = [(name, f'"{base}{value[1:]}' if name == "URI" else value) for name, value in pairs]
                pairs.append(("STABLE-RENDITION-ID", uri))
            line = "#EXT-X-MEDIA:" + _written(pairs)
        elif tag == "#EXT-X-STREAM-INF" and colon:
            uri = next((later for later in source[at + 1:] if later and not later.startswith("#")), None)
            if uri is None or not STABLE_ID.fullmatch(f'"{uri}"'):
                raise ValueError(f"a variant without a URI that can be a stable id: {str(uri)[:80]}")
            pairs = [pair for pair in attribute_list(rest) if pair[0] not in ("PATHWAY-ID", "STABLE-VARIANT-ID")]
            line = "#EXT-X-STREAM-INF:" + _written([*pairs, ("PATHWAY-ID", f'"{pathway}"'),
                                                   ("STABLE-VARIANT-ID", f'"{uri}"')])
        elif line and not line.startswith("#"):
            line = base + line
        elif tag == "#EXT-X-CONTENT-STEERING":
            continue
        lines.append(line)
        if line == "#EXTM3U":
            lines.append(f'#EXT-X-CONTENT-STEERING:SERVER-URI="{steering_uri}",PATHWAY-ID="{pathway}"')
    return "\n".join(lines) + "\n"


def stable_ids(steered):
    """({STABLE-VARIANT-ID: URI}, {STABLE-RENDITION-ID: URI}) of a steered multivariant playlist."""
    variants, renditions = {}, {}
    lines = steered.splitlines()
    for at, line in enumerate(lines):
        tag, colon, rest = line.partition(":")
        if tag not in ("#EXT-X-STREAM-INF", "#EXT-X-MEDIA") or not colon:
            continue
        attributes = dict(attribute_list(rest))
        if tag == "#EXT-X-MEDIA" and "STABLE-RENDITION-ID" in attributes and "URI" in attributes:
            renditions[attributes["STABLE-RENDITION-ID"].strip('"')] = attributes["URI"].strip('"')
        elif tag == "#EXT-X-STREAM-INF" and "STABLE-VARIANT-ID" in attributes:
            uri = next((later for later in lines[at + 1:] if later and not later.startswith("#")), "")
            variants[attributes["STABLE-VARIANT-ID"].strip('"')] = uri
    return variants, renditions


def moved(uri, base_url, other_url):
    """`uri`, one of `base_url`'s, on `other_url` (None when it is not under `base_url`)."""
    base = base_url.rstrip("/") + "/"
    return other_url.rstrip("/") + "/" + uri[len(base):] if uri.startswith(base) else None


def steered_media(text, base_url):
    """A worker's media playlist `text` with every segment's and init segment's URI absolute on
    `base_url` (the orchestrator's route, which redirects each to the worker that holds the job)."""
    base = base_url.rstrip("/") + "/"
    lines = []
    for line in text.splitlines():
        tag, colon, rest = line.partition(":")
        if tag == "#EXT-X-MAP" and colon:
            line = "#EXT-X-MAP:" + _written([(name, f'"{base}{value[1:]}' if name == "URI" else value)
                                              for name, value in attribute_list(rest)])
        elif line and not line.startswith("#"):
            line = base + line
        lines.append(line)
    return "\n".join(lines) + "\n"


def steering_manifest(base_id, workers, steered, ttl_s=STEERING_TTL_S):
    """The steering manifest for a player whose multivariant playlist (`steered`) named pathway
    `base_id`: `workers` is [(id, url)], those that can carry the stream, best first (the
    holder). Each is a pathway cloned from the base with every URI given (PER-VARIANT-URIS,
    PER-RENDITION-URIS: HOST would keep the base's path and port); the base comes last, for when
    none of them can be reached. The base's URL is the one its URIs were made under (whatever
    name the orchestrator is asked by now)."""
    variants, renditions = stable_ids(steered)
    base_url = next(iter(variants.values()), "").rpartition("/")[0]
    priority, clones = [], []
    for worker_id, url in workers:
        if worker_id == base_id:
            continue
        replacement = {
            "PER-VARIANT-URIS": {key: moved(uri, base_url, url) for key, uri in variants.items()},
            "PER-RENDITION-URIS": {key: moved(uri, base_url, url) for key, uri in renditions.items()},
        }
        if any(uri is None for uris in replacement.values() for uri in uris.values()):
            continue  # (a playlist made under another URL of the orchestrator)
        priority.append(worker_id)
        clones.append({"BASE-ID": base_id, "ID": worker_id, "URI-REPLACEMENT": replacement})
    return {"VERSION": 1, "TTL": ttl_s, "PATHWAY-PRIORITY": [*priority, base_id], "PATHWAY-CLONES": clones}
