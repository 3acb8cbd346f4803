"""Which worker gets a job: the seeds' "Worker Selection Strategy" as a pure function.

In order:
1. availability: heard from within seen_within_s, and not OFFLINE or ERROR;
2. capacity: active_jobs below max_concurrent_jobs (and, when the job names an encoder, one the
   worker can use);
3. hardware: for a source that needs HEVC decoding, workers whose trial proved they can do it
   come first (``cuda`` decoding, or a hardware HEVC encoder on the same GPU);
4. load: not STRESSED before STRESSED, then the lowest share of capacity in use, then the lowest
   CPU use;
5. network proximity (optional): a worker on the player's subnet first;
6. ties: the worker id, so the choice is stable.
"""
import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

HEVC_CAPABLE = frozenset({"hevc_nvenc", "hevc_vaapi", "hevc_qsv"})
UNAVAILABLE = frozenset({"OFFLINE", "ERROR"})


@dataclass(frozen=True)
class Choice:
    worker: dict | None
    reason: str  # why this one, or why none


def can_decode_hevc(worker):
    return "cuda" in (worker.get("static_specs") or {}).get("hardware_acceleration", ()) or bool(
        HEVC_CAPABLE & set(worker.get("encoders") or ()))


def same_subnet(worker_url, client_ip):
    """True when the worker's host and the player share a /24 (IPv4) or /64 (IPv6)."""
    try:
        host = ipaddress.ip_address(urlsplit(worker_url).hostname or "")
        client = ipaddress.ip_address(client_ip or "")
    except ValueError:
        return False
    if host.version != client.version:
        return False
    prefix = 24 if host.version == 4 else 64
    return ipaddress.ip_network(f"{host}/{prefix}", strict=False) == ipaddress.ip_network(f"{client}/{prefix}", strict=False)


def select_worker(workers, now, *, seen_within_s, needs_hevc=False, encoder=None, client_ip=None,
                  prefer_same_subnet=True, exclude=()):
    """Choose among `workers` (store rows) at time `now`; returns a Choice. `now` and the rows'
    ``last_seen`` are on one clock: the dispatcher gives time.monotonic() values for both."""
    if not workers:
        return Choice(None, "no worker has registered")
    fresh = [w for w in workers if w["id"] not in exclude and now - w["last_seen"] <= seen_within_s
             and w["status"] not in UNAVAILABLE]
    if not fresh:
        return Choice(None, f"no worker is available (none heard from within {seen_within_s:g}s "
                            "without OFFLINE or ERROR)")
    free = [w for w in fresh if w["active_jobs"] < w["max_concurrent_jobs"]]
    if not free:
        return Choice(None, "every available worker is at max_concurrent_jobs")
    if encoder:
        free = [w for w in free if encoder in (w.get("encoders") or ())]
        if not free:
            return Choice(None, f"no available worker can use encoder {encoder!r}")

    def rank(w):
        cpu = (w.get("telemetry") or {}).get("cpu_usage")
        return (
            0 if not needs_hevc or can_decode_hevc(w) else 1,
            1 if w["status"] == "STRESSED" else 0,
            w["active_jobs"] / w["max_concurrent_jobs"],
            cpu if cpu is not None else 100.0,
            0 if prefer_same_subnet and same_subnet(w["url"], client_ip) else 1,
            w["id"],
        )

    best = min(free, key=rank)
    return Choice(best, f"{len(free)} candidate(s); chose the best by hardware, load, proximity")
