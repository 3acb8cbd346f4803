"""The heartbeat status as a pure function: each status, and each threshold at its edge."""
import pytest

from transcode_worker.status import MIB, Thresholds, WorkerStatus, decide_status

T = Thresholds(cpu_percent=90.0, ram_free_bytes=512 * MIB, temp_c=85.0)
CALM = {"cpu_usage": 10.0, "gpu_usage": None, "ram_free_bytes": 8 * 1024 * MIB, "temp_c": 50.0, "gpu_temp_c": None}


def status(active=0, problems=(), **telemetry):
    return decide_status({**CALM, **telemetry}, active, list(problems), T)


def test_idle_and_busy():
    assert status() == (WorkerStatus.IDLE, None)
    assert status(active=1) == (WorkerStatus.BUSY, None)


@pytest.mark.parametrize("telemetry, stressed", [
    ({"cpu_usage": 89.9}, False), ({"cpu_usage": 90.0}, True),
    ({"ram_free_bytes": 512 * MIB + 1}, False), ({"ram_free_bytes": 512 * MIB}, True),
    ({"temp_c": 84.9}, False), ({"temp_c": 85.0}, True),
    ({"gpu_temp_c": 84.0}, False), ({"gpu_temp_c": 85.0}, True),
])
def test_each_threshold_edge(telemetry, stressed):
    got, reason = status(active=1, **telemetry)
    assert got is (WorkerStatus.STRESSED if stressed else WorkerStatus.BUSY)
    assert (reason is not None) == stressed


def test_stressed_says_every_reason():
    got, reason = status(cpu_usage=99.0, temp_c=95.0)
    assert got is WorkerStatus.STRESSED
    assert "CPU at 99%" in reason and "CPU at 95 °C" in reason


def test_null_telemetry_never_stresses():
    nothing = {key: None for key in CALM}
    assert decide_status(nothing, 0, [], T) == (WorkerStatus.IDLE, None)


def test_problems_win_over_everything():
    got, reason = status(active=2, problems=["media root /nas is missing", "FFmpeg (ffmpeg) is missing"],
                         cpu_usage=100.0)
    assert got is WorkerStatus.ERROR
    assert reason == "media root /nas is missing; FFmpeg (ffmpeg) is missing"
