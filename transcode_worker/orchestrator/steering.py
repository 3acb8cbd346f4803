"""HLS Content Steering for a stream that outlives its worker (pure: no I/O).

A player opens ``/streams/<job>.m3u8`` on the orchestrator: the multivariant playlist of the
worker that holds the job, its URIs made absolute on that worker, each variant on the pathway
named after the worker, and an ``EXT-X-CONTENT-STEERING`` tag. The steering manifest the player
then loads (and reloads every TTL) clones that pathway onto every other worker that could take
the job (``PATHWAY-CLONES``, the host replaced) and lists them in order (``PATHWAY-PRIORITY``),
the job's holder first. A player that cannot reach its worker (refused, 4xx, or its retries spent
on 5xx) moves to the next pathway by itself: hls.js, Shaka and Apple's players implement this.
There, the worker that does not hold the job asks the orchestrator for it (a claim): it takes
the job when its holder is gone, or redirects the player to the holder when it is not.

Segment k of a job is the same pictures at the same times on any worker (the grid and the clock
are the source's and the command's), so the player's next segment from another worker simply
follows the last one.
"""
import re
import threading
from collections import OrderedDict
from urllib.parse import urlsplit

STEERING_TTL_S = 5  # how often a player asks again where to go (a death note moves it within this)
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
    `worker_url`, every variant on `pathway`, the steering manifest at `steering_uri`."""
    base = worker_url.rstrip("/") + "/"
    lines, uri_next = [], False
    for line in text.splitlines():
        if uri_next and line and not line.startswith("#"):
            lines.append(base + line)
            uri_next = False
            continue
        tag, colon, rest = line.partition(":")
        if tag == "#EXT-X-MEDIA" and colon:
            pairs = [(name, f'"{base}{value[1:]}' if name == "URI" else value) for name, value in attribute_list(rest)]
            line = "#EXT-X-MEDIA:" + _written(pairs)
        elif tag == "#EXT-X-STREAM-INF" and colon:
            pairs = [pair for pair in attribute_list(rest) if pair[0] != "PATHWAY-ID"]
            line = "#EXT-X-STREAM-INF:" + _written([*pairs, ("PATHWAY-ID", f'"{pathway}"')])
            uri_next = True
        elif tag == "#EXT-X-CONTENT-STEERING":
            continue
        lines.append(line)
        if line == "#EXTM3U":
            lines.append(f'#EXT-X-CONTENT-STEERING:SERVER-URI="{steering_uri}",PATHWAY-ID="{pathway}"')
    return "\n".join(lines) + "\n"


def clone_host(base_url, other_url):
    """The URI-REPLACEMENT HOST that turns `base_url`'s URIs into `other_url`'s, or None when a
    host alone cannot (another scheme or path: a clone replaces only the host)."""
    base, other = urlsplit(base_url), urlsplit(other_url)
    if (base.scheme, base.path.rstrip("/")) != (other.scheme, other.path.rstrip("/")) or not other.netloc:
        return None
    return other.netloc


def steering_manifest(base, workers, ttl_s=STEERING_TTL_S):
    """The steering manifest for a player whose multivariant playlist named pathway `base`
    (a worker id) on `base_url`: `workers` is [(id, url)], the ones that can carry the stream,
    best first (the holder). Each becomes a pathway (the base as it is, the others cloned from it)."""
    base_id, base_url = base
    priority, clones = [], []
    for worker_id, url in workers:
        if worker_id == base_id:
            priority.append(worker_id)
            continue
        host = clone_host(base_url, url)
        if host is None:
            continue
        priority.append(worker_id)
        clones.append({"BASE-ID": base_id, "ID": worker_id, "URI-REPLACEMENT": {"HOST": host}})
    if not priority:  # nowhere better: stay (the player's own retries, then the holder again)
        priority = [base_id]
    return {"VERSION": 1, "TTL": ttl_s, "PATHWAY-PRIORITY": priority, "PATHWAY-CLONES": clones}


class Multivariants:
    """The steered multivariant playlist of each job, per worker that made it (LRU, bounded): a
    VOD stream's never changes, and a player that opens the stream again gets the same text."""

    def __init__(self, size=4096):
        self.size = size
        self._texts = OrderedDict()  # (job id, worker id) -> text
        self._lock = threading.Lock()

    def get(self, job_id, worker_id):
        with self._lock:
            text = self._texts.get((job_id, worker_id))
            if text is not None:
                self._texts.move_to_end((job_id, worker_id))
            return text

    def put(self, job_id, worker_id, text):
        with self._lock:
            self._texts[(job_id, worker_id)] = text
            while len(self._texts) > self.size:
                self._texts.popitem(last=False)

    def forget(self, job_id):
        with self._lock:
            for key in [key for key in self._texts if key[0] == job_id]:
                del self._texts[key]
