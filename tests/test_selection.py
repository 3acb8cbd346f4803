"""Worker selection as a pure function over a table of worker states: every criterion and tie."""
import pytest

from transcode_worker.orchestrator.selection import can_decode_hevc, same_subnet, select_worker

NOW = 10_000.0


def worker(wid, *, seen=1.0, status="IDLE", active=0, cap=2, hw=(), encoders=("libx264",), cpu=10.0,
           url=None):
    return {"id": wid, "last_seen": NOW - seen, "status": status, "active_jobs": active,
            "max_concurrent_jobs": cap, "static_specs": {"hardware_acceleration": list(hw)},
            "encoders": list(encoders), "telemetry": {"cpu_usage": cpu}, "url": url or f"http://10.0.9.{len(wid)}:8081"}


def pick(workers, **kwargs):
    choice = select_worker(workers, NOW, seen_within_s=30, **kwargs)
    return choice.worker["id"] if choice.worker else choice.reason


@pytest.mark.parametrize("table, expected", [
    # availability: heard from within 30 s, not OFFLINE or ERROR
    ([worker("a", seen=31), worker("b", seen=29)], "b"),
    ([worker("a", seen=30.0), worker("b", seen=30.1)], "a"),
    ([worker("a", status="OFFLINE"), worker("b", active=1)], "b"),
    ([worker("a", status="ERROR"), worker("b", active=1)], "b"),
    # capacity
    ([worker("a", active=2, cap=2), worker("b", active=3, cap=4)], "b"),
    # load: STRESSED last, then share of capacity, then CPU
    ([worker("a", status="STRESSED"), worker("b", status="BUSY", active=1)], "b"),
    ([worker("a", active=1, cap=2), worker("b", active=1, cap=4)], "b"),
    ([worker("a", cpu=50.0), worker("b", cpu=20.0)], "b"),
    ([worker("a", cpu=None), worker("b", cpu=99.0)], "b"),  # unknown CPU counts as busy
    # ties: the id
    ([worker("b"), worker("a")], "a"),
])
def test_each_criterion(table, expected):
    assert pick(table) == expected


def test_hevc_sources_go_to_proven_hardware_first():
    table = [worker("a"), worker("b", hw=["cuda"], active=1), worker("c", encoders=["libx264", "hevc_vaapi"], active=1, cpu=5)]
    assert pick(table) == "a"  # H.264: lightest load wins
    assert pick(table, needs_hevc=True) == "c"  # both proven; c is less busy by CPU
    assert pick([worker("a"), worker("b", hw=["nvenc"], encoders=["h264_nvenc"])], needs_hevc=True) == "a"
    assert can_decode_hevc(worker("x", hw=["cuda"])) and not can_decode_hevc(worker("y", hw=["vaapi"]))


def test_same_subnet_breaks_load_ties_only():
    near = worker("z", url="http://192.168.1.20:8081")
    far = worker("a", url="http://10.0.0.5:8081")
    assert pick([far, near], client_ip="192.168.1.77") == "z"
    assert pick([far, near], client_ip="192.168.1.77", prefer_same_subnet=False) == "a"
    busy_near = worker("z", url="http://192.168.1.20:8081", active=1)
    assert pick([far, busy_near], client_ip="192.168.1.77") == "a"
    assert same_subnet("http://[fd00::1]:8081", "fd00::99") and not same_subnet("http://host.lan:8081", "10.0.0.1")


def test_encoder_must_be_usable():
    table = [worker("a"), worker("b", encoders=["libx264", "h264_nvenc"], active=1)]
    assert pick(table, encoder="h264_nvenc") == "b"
    assert "h264_qsv" in pick(table, encoder="h264_qsv")


@pytest.mark.parametrize("table, words", [
    ([], "no worker has registered"),
    ([worker("a", seen=60)], "none heard from within 30s"),
    ([worker("a", active=2)], "max_concurrent_jobs"),
])
def test_no_worker_says_why(table, words):
    assert words in pick(table)


def test_excluded_workers_are_skipped():
    assert pick([worker("a"), worker("b", active=1)], exclude={"a"}) == "b"
