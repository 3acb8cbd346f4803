"""Telemetry: real psutil on this machine; NVML real (absent here) and faked per metric."""
from collections import namedtuple
from types import SimpleNamespace

import pytest

from transcode_worker import telemetry
from transcode_worker.capabilities import Capabilities
from transcode_worker.schemas import TelemetrySchema
from transcode_worker.telemetry import Nvml, Telemetry, cpu_temperature, static_specs

Reading = namedtuple("Reading", "label current high critical")


def test_collect_on_this_machine_fits_the_schema_and_invents_nothing():
    t = Telemetry()
    data = t.collect()
    assert TelemetrySchema().load(data) is not None
    assert 0 <= data["cpu_usage"] <= 100
    assert data["ram_free_bytes"] > 0
    if not Nvml().available:  # no NVIDIA driver here: GPU values are null, not zero
        assert data["gpu_usage"] is None and data["gpu_temp_c"] is None
    assert t.last_collect_s < 1.0  # no blocking sample inside the heartbeat loop


def test_static_specs_describe_this_machine():
    specs = static_specs(Capabilities("5.1", ("libx264",), ("vaapi",)))
    assert specs["total_threads"] >= 1
    assert specs["cpu_model"]  # /proc/cpuinfo names it on Linux
    assert specs["hardware_acceleration"] == ["vaapi"]


def test_cpu_temperature_prefers_cpu_sensors():
    readings = {
        "nvme": [Reading("Composite", 70.0, None, None)],
        "coretemp": [Reading("Package id 0", 55.0, 80, 100), Reading("Core 0", 58.0, 80, 100)],
    }
    assert cpu_temperature(readings) == 58.0
    assert cpu_temperature({"nvme": [Reading("Composite", 70.0, None, None)]}) is None
    assert cpu_temperature({}) is None


class FakeNvml:
    """Two GPUs; the second's temperature sensor fails."""

    class NVMLError(Exception):
        pass

    NVML_TEMPERATURE_GPU = 0

    def __init__(self, fail_init=False):
        self.fail_init = fail_init

    def nvmlInit(self):
        if self.fail_init:
            raise self.NVMLError("NVML Shared Library Not Found")

    def nvmlDeviceGetCount(self):
        return 2

    def nvmlDeviceGetHandleByIndex(self, i):
        return i

    def nvmlDeviceGetUtilizationRates(self, handle):
        return SimpleNamespace(gpu=[30, 75][handle])

    def nvmlDeviceGetTemperature(self, handle, sensor):
        if handle == 1:
            raise self.NVMLError("Not Supported")
        return 61

    def nvmlDeviceGetName(self, handle):
        return b"NVIDIA Fake 4090"


def test_each_gpu_metric_falls_back_on_its_own(monkeypatch):
    monkeypatch.setattr(telemetry, "pynvml", FakeNvml())
    nvml = Nvml()
    assert nvml.available
    assert nvml.utilisation() == 75.0  # the busiest GPU
    assert nvml.temperature() == 61.0  # the GPU whose sensor answers
    assert nvml.names() == ["NVIDIA Fake 4090", "NVIDIA Fake 4090"]


def test_no_driver_is_quiet_and_null(monkeypatch, caplog):
    monkeypatch.setattr(telemetry, "pynvml", FakeNvml(fail_init=True))
    with caplog.at_level("INFO"):
        nvml = Nvml()
    assert not nvml.available and nvml.utilisation() is None and nvml.temperature() is None
    assert not caplog.records  # normal on a machine without NVIDIA: nothing at INFO or above


@pytest.mark.parametrize("broken", ["cpu_percent", "virtual_memory"])
def test_a_failing_psutil_value_is_null(monkeypatch, broken):
    def fail(*args, **kwargs):
        raise OSError("no /proc")
    monkeypatch.setattr(telemetry, "pynvml", FakeNvml(fail_init=True))
    t = Telemetry()
    monkeypatch.setattr(telemetry.psutil, broken, fail)
    data = t.collect()
    key = {"cpu_percent": "cpu_usage", "virtual_memory": "ram_free_bytes"}[broken]
    assert data[key] is None
    assert all(data[k] is not None for k in ("cpu_usage", "ram_free_bytes") if k != key)
