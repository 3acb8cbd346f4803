"""What the machine says about itself: CPU, memory, temperatures (psutil) and GPUs (NVML).

Nothing is invented: a value the machine cannot give is None (null on the wire), each on its own,
so a GPU whose temperature sensor fails still reports its utilisation. A machine without an NVIDIA
driver is normal: NVML is tried once, quietly, and GPU values stay None.
"""
import logging
import os
import platform
import threading
import time

import psutil

try:
    import pynvml
except ImportError:  # nvidia-ml-py is a dependency, but telemetry must not depend on it being sane
    pynvml = None

log = logging.getLogger(__name__)

# psutil's sensor groups that measure the CPU package or cores, most telling first
CPU_SENSORS = ("coretemp", "k10temp", "zenpower", "cpu_thermal", "cpu-thermal", "soc_thermal", "acpitz")


def cpu_model():
    """The CPU's marketing name from /proc/cpuinfo (x86 "model name", ARM "Model"/"Hardware")."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            fields = dict(line.split(":", 1) for line in fh if ":" in line)
    except OSError:
        fields = {}
    fields = {k.strip().lower(): v.strip() for k, v in fields.items()}
    for key in ("model name", "model", "hardware", "cpu model"):
        if fields.get(key):
            return fields[key]
    return platform.processor() or platform.machine() or None


def cpu_temperature(readings):
    """The hottest CPU reading among psutil.sensors_temperatures() groups (pure); None without any."""
    for group in CPU_SENSORS:
        values = [r.current for r in readings.get(group, ()) if r.current is not None and r.current > 0]
        if values:
            return float(max(values))
    return None


class Nvml:
    """NVIDIA GPUs through NVML, initialised once; every query falls back to None on its own."""

    def __init__(self):
        self._handles = []
        self._lock = threading.Lock()
        self.error = None
        if pynvml is None:
            self.error = "nvidia-ml-py is not installed"
            return
        try:
            pynvml.nvmlInit()
            self._handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
        except pynvml.NVMLError as exc:  # no driver, no GPU: normal, and quiet
            self.error = str(exc)
            log.debug("NVML unavailable (%s): GPU telemetry is null", exc)

    @property
    def available(self):
        return bool(self._handles)

    def _each(self, query):
        values = []
        with self._lock:
            for handle in self._handles:
                try:
                    values.append(float(query(handle)))
                except pynvml.NVMLError:
                    pass
        return values

    def utilisation(self):
        """Busiest GPU's utilisation in %, or None."""
        values = self._each(lambda h: pynvml.nvmlDeviceGetUtilizationRates(h).gpu)
        return max(values) if values else None

    def temperature(self):
        """Hottest GPU's temperature in °C, or None."""
        values = self._each(lambda h: pynvml.nvmlDeviceGetTemperature(h, pynvml.NVML_TEMPERATURE_GPU))
        return max(values) if values else None

    def names(self):
        with self._lock:
            names = []
            for handle in self._handles:
                try:
                    name = pynvml.nvmlDeviceGetName(handle)
                    names.append(name.decode() if isinstance(name, bytes) else name)
                except pynvml.NVMLError:
                    names.append(None)
            return names


class Telemetry:
    """Collects the heartbeat's telemetry without blocking: CPU is the average since the last call."""

    def __init__(self, nvml=None):
        self.nvml = nvml if nvml is not None else Nvml()
        psutil.cpu_percent(interval=None)  # the first call only starts the measurement
        self.last_collect_s = None

    def collect(self):
        started = time.perf_counter()
        data = {
            "cpu_usage": _quietly(lambda: round(psutil.cpu_percent(interval=None), 1)),
            "gpu_usage": self.nvml.utilisation(),
            "ram_free_bytes": _quietly(lambda: psutil.virtual_memory().available),
            "temp_c": _quietly(self._cpu_temp),
            "gpu_temp_c": self.nvml.temperature(),
        }
        self.last_collect_s = time.perf_counter() - started
        return data

    @staticmethod
    def _cpu_temp():
        read = getattr(psutil, "sensors_temperatures", None)  # absent on some platforms
        return cpu_temperature(read()) if read else None


def _quietly(read):
    try:
        return read()
    except (OSError, RuntimeError, AttributeError) as exc:
        log.debug("telemetry value unavailable: %s", exc)
        return None


def static_specs(capabilities):
    """The registration's static_specs: what this machine is."""
    return {
        "cpu_model": cpu_model(),
        "total_threads": os.cpu_count(),
        "hardware_acceleration": list(capabilities.hardware_acceleration),
    }
