"""Hardware acceleration, proven by trial: a one-frame FFmpeg run per candidate, once at start.

An FFmpeg build lists ``h264_nvenc`` whether or not the machine has an NVIDIA GPU, so a listing
proves nothing. Each candidate here runs for real, with a timeout: an encoder counts only when it
encoded a frame, CUDA decoding only when the GPU decoded an HEVC frame (what an orchestrator needs
to know about a worker for 10-bit HEVC sources), OpenCL or VAAPI tone-mapping only when the GPU
turned a PQ frame into SDR with the very filters a job uses. A trial passes only when FFmpeg exits 0 and wrote
no error: FFmpeg quietly falls back to software decoding after a failed hardware set-up, and that
fallback must not read as success.
"""
import glob
import logging
import os
import re
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from . import bounded

log = logging.getLogger(__name__)

TRIAL_TIMEOUT_S = 15
_ADDRESS = re.compile(r" @ 0x[0-9a-f]+")  # "[h264_nvenc @ 0x5600b2b615c0]" -> "[h264_nvenc]"
# one small frame: every hardware encoder accepts 256x144 (NVENC's minimum is 145x49)
_FRAME = ["-f", "lavfi", "-i", "color=c=gray:s=256x144:r=25:d=0.04", "-frames:v", "1"]
_NULL_OUT = ["-f", "null", "-"]
ENCODERS_BY_API = {
    "nvenc": ("h264_nvenc", "hevc_nvenc"),
    "vaapi": ("h264_vaapi", "hevc_vaapi"),
    "qsv": ("h264_qsv", "hevc_qsv"),
}
HEVC_SAMPLE = "sample.hevc"
# how a job and a trial hand frames to the GPU (the same arguments, so a passed trial means a job works)
VAAPI_UPLOAD = "format=nv12,hwupload"
QSV_DEVICE_ARGS = ("-init_hw_device", "qsv=hw", "-filter_hw_device", "hw")
QSV_UPLOAD = "format=nv12,hwupload=extra_hw_frames=64"
# HDR to SDR on the GPU (any OpenCL device: NVIDIA, AMD, Intel), as tonemap.py does it in
# software: mobius, colours kept, BT.709 out; the frame comes back to memory as 8-bit 4:2:0
OPENCL_DEVICE_ARGS = ("-init_hw_device", "opencl=ocl", "-filter_hw_device", "ocl")
OPENCL_TONEMAP = ("format=p010,hwupload,tonemap_opencl=tonemap=mobius:desat=0:t=bt709:m=bt709:p=bt709:r=tv"
                  ":format=nv12,hwdownload,format=nv12")
# VAAPI's tone-mapper (Intel), for VAAPI jobs: the frame stays on the GPU for the encoder
VAAPI_TONEMAP = "format=p010,hwupload,tonemap_vaapi=format=nv12:t=bt709:m=bt709:p=bt709"
# a PQ frame for the tone-mapping trials (the filter refuses frames that are not HDR)
_PQ_FRAME = ["-f", "lavfi", "-i", "color=c=gray:s=256x144:r=25:d=0.04,"
             "setparams=color_trc=smpte2084:color_primaries=bt2020:colorspace=bt2020nc", "-frames:v", "1"]


@dataclass(frozen=True)
class Trial:
    api: str               # what it proves, in the registration's words: nvenc, vaapi, qsv, cuda, opencl
    what: str              # the encoder it tries, "hevc decoding" or "tone-mapping"
    args: tuple            # FFmpeg's arguments after the executable
    device: str | None = None  # the render node a VAAPI trial used


@dataclass(frozen=True)
class TrialResult:
    trial: Trial
    passed: bool
    detail: str            # why it failed (FFmpeg's last error line), or "ok"

    def to_dict(self):
        return {"api": self.trial.api, "what": self.trial.what, "device": self.trial.device,
                "passed": self.passed, "detail": self.detail}


def render_nodes():
    return sorted(glob.glob("/dev/dri/renderD*"))


def plan_trials(listed_encoders, hwaccels, nodes, workdir):
    """The trials worth running for this FFmpeg build and machine (pure), plus why others are not.

    Returns (trials, skipped) where skipped is a list of (api, what, reason)."""
    listed = set(listed_encoders)
    trials, skipped = [], []
    for encoder in ENCODERS_BY_API["nvenc"]:
        if encoder in listed:
            trials.append(Trial("nvenc", encoder, (*_FRAME, "-c:v", encoder, *_NULL_OUT)))
    for encoder in ENCODERS_BY_API["vaapi"]:
        if encoder not in listed:
            continue
        if not nodes:
            skipped.append(("vaapi", encoder, "no /dev/dri render node"))
        for node in nodes:
            trials.append(Trial("vaapi", encoder, (
                "-vaapi_device", node, *_FRAME, "-vf", VAAPI_UPLOAD, "-c:v", encoder, *_NULL_OUT,
            ), device=node))
    for node in nodes if "h264_vaapi" in listed else ():
        trials.append(Trial("vaapi", "tone-mapping", (
            "-vaapi_device", node, *_PQ_FRAME, "-vf", f"{VAAPI_TONEMAP},hwdownload,format=nv12", *_NULL_OUT,
        ), device=node))
    for encoder in ENCODERS_BY_API["qsv"]:
        if encoder not in listed:
            continue
        if not nodes:
            skipped.append(("qsv", encoder, "no /dev/dri render node"))
            continue
        trials.append(Trial("qsv", encoder, (
            *QSV_DEVICE_ARGS, *_FRAME, "-vf", QSV_UPLOAD, "-c:v", encoder, *_NULL_OUT,
        )))
    if "cuda" in hwaccels:
        trials.append(Trial("cuda", "hevc decoding", (
            "-init_hw_device", "cuda=gpu", "-hwaccel", "cuda", "-hwaccel_device", "gpu",
            "-hwaccel_output_format", "cuda", "-i", os.path.join(workdir, HEVC_SAMPLE), *_NULL_OUT,
        )))
    if "opencl" in hwaccels:
        trials.append(Trial("opencl", "tone-mapping",
                            (*OPENCL_DEVICE_ARGS, *_PQ_FRAME, "-vf", OPENCL_TONEMAP, *_NULL_OUT)))
    return trials, skipped


def run_trial(ffmpeg, trial):
    argv = [ffmpeg, "-hide_banner", "-nostdin", "-v", "error", *trial.args]
    try:
        proc = bounded.run(argv, TRIAL_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return TrialResult(trial, False, f"no answer within {TRIAL_TIMEOUT_S}s")
    except OSError as exc:
        return TrialResult(trial, False, f"cannot run FFmpeg: {exc.strerror}")
    errors = proc.stderr.decode(errors="replace").strip().splitlines()
    if proc.returncode == 0 and not errors:
        return TrialResult(trial, True, "ok")
    # the first line names the cause ("Cannot load libcuda.so.1"); later ones are consequences
    first = _ADDRESS.sub("", errors[0]).strip() if errors else f"FFmpeg exited with {proc.returncode}"
    return TrialResult(trial, False, first)


def _make_hevc_sample(ffmpeg, workdir):
    """One HEVC frame for the decoding trial, made in software."""
    argv = [ffmpeg, "-hide_banner", "-nostdin", "-v", "error", *_FRAME, "-c:v", "libx265",
            "-x265-params", "log-level=error", "-f", "hevc", os.path.join(workdir, HEVC_SAMPLE)]
    try:
        return bounded.run(argv, TRIAL_TIMEOUT_S).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@dataclass(frozen=True)
class Finding:
    hardware_acceleration: tuple[str, ...]   # APIs with at least one passed trial (OpenCL aside)
    encoders: tuple[str, ...]                # hardware encoders that encoded a frame
    vaapi_device: str | None                 # the render node VAAPI jobs use
    tonemap: tuple[str, ...]                 # "opencl", "vaapi": where HDR can be tone-mapped on the GPU
    results: tuple[TrialResult, ...]
    skipped: tuple[tuple[str, str, str], ...]


def find(ffmpeg, listed_encoders, hwaccels, nodes=None):
    """Run every trial that applies (in parallel, each bounded) and sum up what passed."""
    nodes = render_nodes() if nodes is None else nodes
    with tempfile.TemporaryDirectory(prefix="transcode-worker-trial-") as workdir:
        trials, skipped = plan_trials(listed_encoders, hwaccels, nodes, workdir)
        if any(t.api == "cuda" for t in trials) and not _make_hevc_sample(ffmpeg, workdir):
            trials = [t for t in trials if t.api != "cuda"]
            skipped.append(("cuda", "hevc decoding", "cannot make an HEVC sample (no libx265)"))
        with ThreadPoolExecutor(max_workers=max(1, len(trials))) as pool:
            results = tuple(pool.map(lambda t: run_trial(ffmpeg, t), trials))
    passed = [r.trial for r in results if r.passed]
    tonemappers = [t for t in passed if t.what == "tone-mapping"]
    passed = [t for t in passed if t.what != "tone-mapping"]
    # the registration's APIs are the encoding and decoding ones the endpoint map names; the
    # tone-mapper is this worker's own business (`transcode-worker probe` shows it)
    apis = tuple(dict.fromkeys(t.api for t in passed))
    encoders = tuple(dict.fromkeys(t.what for t in passed if t.api in ENCODERS_BY_API))
    device = next((t.device for t in passed if t.device), None)
    # VAAPI's tone-mapper counts on the node the VAAPI jobs use
    tonemap = tuple(t.api for t in tonemappers if t.api == "opencl" or (t.device and t.device == device))
    for r in results:
        log.log(logging.INFO if r.passed else logging.DEBUG, "hardware trial %s %s%s: %s",
                r.trial.api, r.trial.what, f" on {r.trial.device}" if r.trial.device else "", r.detail)
    return Finding(apis, encoders, device, tonemap, results, tuple(skipped))
