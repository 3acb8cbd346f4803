"""Prometheus metrics for `GET /metrics` (prometheus_client, one registry per app).

Counters and histograms are updated where things happen (job transitions, the HLS handler, every
request); gauges that mirror state (jobs by state, spool depth, heartbeat failures, health) are
read when Prometheus scrapes, so they can never drift from the truth.
"""
import time

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from .states import JobState

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"))
WAIT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32)


class WorkerMetrics:
    def __init__(self):
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.ffmpeg_starts = Counter("transcode_ffmpeg_starts", "FFmpeg processes spawned", registry=r)
        self.ffmpeg_failures = Counter("transcode_ffmpeg_failures", "jobs that ended FAILED", registry=r)
        self.segments_served = Counter("transcode_segments_served", "HLS segments sent to players", registry=r)
        self.bytes_served = Counter("transcode_bytes_served", "bytes of playlists and segments sent", registry=r)
        self.segment_wait = Histogram(
            "transcode_segment_wait_seconds", "how long a player's playlist or segment request waited "
            "for FFmpeg to write it", ["kind"], buckets=WAIT_BUCKETS, registry=r)
        self.request_latency = Histogram(
            "transcode_http_request_duration_seconds", "HTTP request latency", ["endpoint", "method", "status"],
            registry=r)
        self._children = {}

    def watch(self, ctx):
        """Read state-mirroring values from the WorkerContext at scrape time."""
        self.registry.register(_StateCollector(ctx))
        ctx.manager.add_listener(self._job_changed)

    def _job_changed(self, job, old, new):
        if old is new is JobState.STARTING and job.pid:
            self.ffmpeg_starts.inc()
        elif new is JobState.FAILED and old is not JobState.FAILED:
            self.ffmpeg_failures.inc()

    def observe_request(self, endpoint, method, status, started):
        method = method if method in METHODS else "other"  # a client's made-up method: one label
        self._child(self.request_latency, endpoint or "unknown", method, str(status)).observe(
            time.perf_counter() - started)

    def observe_served(self, kind, started, size):
        """A playlist or segment went out to a player, `started` (perf_counter) when it asked."""
        self._child(self.segment_wait, kind).observe(time.perf_counter() - started)
        self.bytes_served.inc(size or 0)
        if kind == "segment":
            self.segments_served.inc()

    def _child(self, metric, *labels):
        """metric.labels(*labels), looked up once: it takes a lock and builds keys on every call,
        and players make thousands of requests a second."""
        key = (metric, labels)
        child = self._children.get(key)
        if child is None:
            child = self._children.setdefault(key, metric.labels(*labels))
        return child

    def render(self):
        return generate_latest(self.registry)


class _StateCollector:
    """Gauges read from the live objects at each scrape."""

    def __init__(self, ctx):
        self.ctx = ctx

    def collect(self):
        jobs = GaugeMetricFamily("transcode_jobs", "jobs by state", labels=["state"])
        counts = {state: 0 for state in JobState}
        for job in self.ctx.manager.jobs():
            counts[job.state] += 1
        for state, count in counts.items():
            jobs.add_metric([state.value], count)
        yield jobs
        yield GaugeMetricFamily("transcode_max_concurrent_jobs", "capacity",
                                value=self.ctx.settings.max_concurrent_jobs)
        yield GaugeMetricFamily("transcode_health_problems", "health checks failing now (ERROR when > 0)",
                                value=len(self.ctx.health.problems))
        hb = self.ctx.heartbeat
        yield GaugeMetricFamily("transcode_spool_depth", "heartbeats waiting on disk for the orchestrator",
                                value=len(hb.spool) if hb else 0)
        yield CounterMetricFamily("transcode_heartbeat_failures", "heartbeats or registrations that failed",
                                  value=hb.failures if hb else 0)
        yield CounterMetricFamily("transcode_heartbeats_sent", "live heartbeats accepted",
                                  value=hb.sent if hb else 0)
