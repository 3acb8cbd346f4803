"""The worker's status for the orchestrator, decided from what it measured (pure: no I/O).

    ERROR     something stops this worker from doing jobs (health problems): it refuses new ones
    STRESSED  CPU, memory or temperature at or past a configured threshold, or a job that falls
              behind real time even at its speed guard's lightest step: send work elsewhere
    BUSY      at least one active job
    IDLE      none
"""
from dataclasses import dataclass
from enum import Enum

MIB = 1024 * 1024


class WorkerStatus(str, Enum):
    IDLE = "IDLE"
    BUSY = "BUSY"
    STRESSED = "STRESSED"
    ERROR = "ERROR"


@dataclass(frozen=True)
class Thresholds:
    cpu_percent: float        # STRESSED at or above this CPU use
    ram_free_bytes: int       # STRESSED at or below this much available memory
    temp_c: float             # STRESSED when the CPU or a GPU is at or above this

    @classmethod
    def from_settings(cls, settings):
        return cls(settings.stressed_cpu_percent, settings.stressed_ram_free_bytes, settings.stressed_temp_c)


def stress_reasons(telemetry, thresholds):
    """Why the machine is stressed, one phrase per measure past its threshold (null measures never count)."""
    reasons = []
    cpu = telemetry.get("cpu_usage")
    if cpu is not None and cpu >= thresholds.cpu_percent:
        reasons.append(f"CPU at {cpu:g}% (threshold {thresholds.cpu_percent:g}%)")
    free = telemetry.get("ram_free_bytes")
    if free is not None and free <= thresholds.ram_free_bytes:
        reasons.append(f"{free // MIB} MiB of memory available (threshold {thresholds.ram_free_bytes // MIB} MiB)")
    for key, what in (("temp_c", "CPU"), ("gpu_temp_c", "GPU")):
        temp = telemetry.get(key)
        if temp is not None and temp >= thresholds.temp_c:
            reasons.append(f"{what} at {temp:g} °C (threshold {thresholds.temp_c:g} °C)")
    return reasons


def decide_status(telemetry, active_jobs, problems, thresholds, behind=()):
    """(WorkerStatus, reason or None) from telemetry, the count of active jobs, health problems
    and why jobs cannot keep up with their viewers (`behind`, the speed guard's)."""
    if problems:
        return WorkerStatus.ERROR, "; ".join(problems)
    stressed = stress_reasons(telemetry, thresholds) + list(behind)
    if stressed:
        return WorkerStatus.STRESSED, "; ".join(stressed)
    return (WorkerStatus.BUSY if active_jobs else WorkerStatus.IDLE), None
