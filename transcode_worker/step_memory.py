"""What the speed guard has learnt on this machine: for each kind of job (the source's codec,
size, depth, frame rate and HDR; the output's encoder, preset, size and bitrate; tone-mapping,
burnt subtitles), the step its last job ran at once it kept up. Kept on disk beside the probe
cache (``spool_dir/speed-steps.json``), so the next film of a kind this machine cannot
transcode in real time starts at a step it can, instead of with a stall.

A step down is learnt at once; a job that keeps up with room to spare (speed_guard.HEADROOM)
at a learnt step teaches the step above it, so a machine that was only busy for a while goes
back to the steps asked for.
"""
import json
import logging
import os
import threading

log = logging.getLogger(__name__)

FILE = "speed-steps.json"


def kind_of(spec, preset, height, light=False):
    """The key of a job's kind: what decides how fast FFmpeg can make it (`light`: x264 analyses
    lightly from the first step, which makes its steps other ones)."""
    video = spec.media.video
    source = (f"{video.codec} {video.width}x{video.height} {video.bit_depth or 8}-bit "
              f"{round(video.frame_rate or 0)}fps {video.hdr}{' interlaced' if video.interlaced else ''}")
    extras = "".join([" tone-mapped" if spec.tone_mapped else "", " burnt subtitles" if spec.burn else ""])
    return f"{source} -> {spec.encoder} {preset}{' light' if light else ''} {height}p {spec.bitrate_bps}{extras}"


class StepMemory:
    def __init__(self, folder):
        self.path = os.path.join(folder, FILE)
        self._lock = threading.Lock()
        try:
            with open(self.path, encoding="utf-8") as fh:
                data = json.load(fh)
            self._steps = {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, int) and v >= 0}
        except (OSError, ValueError, AttributeError):
            self._steps = {}

    def first_step(self, kind):
        with self._lock:
            return self._steps.get(kind, 0)

    def learn(self, kind, step):
        """Remember `step` for jobs of `kind` (False when that is what it knew)."""
        with self._lock:
            if self._steps.get(kind, 0) == step:
                return False
            if step:
                self._steps[kind] = step
            else:
                self._steps.pop(kind, None)
            data = dict(self._steps)
        try:
            staged = f"{self.path}.tmp"
            with open(staged, "w", encoding="utf-8") as fh:
                json.dump(data, fh, indent=1, sort_keys=True)
            os.replace(staged, self.path)
        except OSError as exc:
            log.warning("speed guard: cannot save what it learnt (%s): %s", self.path, exc)
        return True
