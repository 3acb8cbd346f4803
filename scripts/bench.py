#!/usr/bin/env python3
"""`make bench`: the worker's speed, each figure beside its reference measured in the same run,
medians over --runs repetitions. Prints a table; asserts nothing (speed is measured here, never
in timed tests).

- first playlist (POST, then a player's requests: the multivariant playlist, the media playlist,
  segment 0 to its last byte) for a 1080p H.264 source transcoded to 720p and for a remux: the
  worker; its FFmpeg command run by hand (until its run's segment list names a first segment);
  and FFmpeg with Jellyfin's default HLS settings (until it has begun its second segment);
- seek: a re-POST with a new seek_time until the segment that holds it is fetched, beside a cold
  start at that position;
- the whole film: a player that has segment 0 jumps to 75 % of the film (its request starts a
  run there; the sound's segment there asked for beside it), beside Jellyfin's first segment;
  the same segment asked for again; the keyframe index of a 2-hour film in Matroska and MP4
  (scripts/bench_keyframes.py);
- 50 HLS clients on loopback (2 MB segments): the worker under gunicorn beside nginx (Debian's
  nginx-light, sendfile on) serving the same folder, measured by wrk; and a worker behind its own
  nginx front (front = "nginx") beside the same nginx;
- the idle worker: CPU share and resident memory; the heartbeat's telemetry collection time;
- N = 1, 2, 4 concurrent transcodes: aggregate speed beside N FFmpeg processes by hand;
- throttling: FFmpeg's CPU with several viewers playing at 1x, with and without it;
- tone-mapping: a 4K HDR10 source transcoded to 720p SDR, beside the same chain with the picture
  tone-mapped before it is scaled, and beside the same transcode without tone-mapping;
- subtitles: the first playlist of a source with two text subtitle tracks (a file never played,
  so their extraction runs beside the job's FFmpeg) beside the same source without them;
- failover: the orchestrator's answers to 1,000 steered viewers, and the stall of a player when
  the worker holding its stream dies (scripts/bench_failover.py).
"""
import argparse
import multiprocessing
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import psutil
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the test suite's real-service helper
from worker_process import SlowClients, WorkerProcess, free_port, open_to_others, wait_for  # noqa: E402

sys.path.insert(0, str(ROOT / "scripts"))
import bench_failover  # noqa: E402
import bench_keyframes  # noqa: E402

from transcode_worker import front, grid as grid_, hls_names, keyframes, media, renditions, speed_guard, tonemap  # noqa: E402
from transcode_worker.config import SettingsSchema  # noqa: E402
from transcode_worker.ffmpeg_command import (LIGHT_DECODE, HlsOutput, build_audio_command,  # noqa: E402
                                             build_command, delivers_hevc, first_segment_s)
from transcode_worker.telemetry import Telemetry  # noqa: E402
from transcode_worker.tracks import choose_audio  # noqa: E402
from transcode_worker.validation import JobSpec  # noqa: E402

DEFAULTS = SimpleNamespace(**SettingsSchema().load({}))  # the settings a user starts with
SEGMENT_S = DEFAULTS.segment_duration_s
BITRATE = 4_000_000  # -> 720p on the bitrate ladder
SEEK_S = 60
JUMP_AT = 0.75  # the whole-film part's jump: to the segment at 75 % of the film
CLIENTS = 50
# the worker as a user runs it (default segments), not the tests' short ones; quiet logs
BENCH_WORKER = {"log_level": "warning", "playlist_wait_s": 60.0, "segment_duration_s": SEGMENT_S}
# Jellyfin's defaults for an HLS transcode with libx264 (its EncodingHelper): 3 s segments,
# keyframes forced every 3 s and nowhere else, veryfast with its x264 options, CRF 23 capped.
JELLYFIN_SEGMENT_S = 3
JELLYFIN_X264 = "subme=0:me_range=4:rc_lookahead=10:me=dia:no_chroma_me:8x8dct=0:partitions=none"


# -- sources -------------------------------------------------------------------------------------
def make_source(path, seconds, size="1920x1080", video_bitrate=None):
    """A 24 fps H.264 + AAC source that moves (so encoders work as on a film)."""
    rate = ["-b:v", str(video_bitrate), "-maxrate", str(video_bitrate), "-bufsize", str(video_bitrate)] \
        if video_bitrate else []
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
                    "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=24:duration={seconds}",
                    "-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}",
                    "-c:v", "libx264", "-preset", "ultrafast", "-g", "48", *rate, "-c:a", "aac", str(path)],
                   check=True)
    return path


# -- FFmpeg by hand ------------------------------------------------------------------------------
def job_plan(source, folder, job_id, *, remux=False, seek_s=0.0, bitrate=BITRATE, step=None):
    """(the job's spec, its grid, the segment that holds `seek_s`) as the worker, with its
    default settings, plans this job."""
    info = media.run_ffprobe("ffprobe", str(source))
    seek = time.strftime("%H:%M:%S", time.gmtime(seek_s))
    audio, chosen_by = choose_audio(info)
    spec = JobSpec(job_id=job_id, source=source, folder=folder, seek_time=seek, bitrate_bps=bitrate,
                   encoder="libx264", force_remux=remux, media=info, source_path=str(source), output_path=None,
                   audio=audio, audio_chosen_by=chosen_by, step=step)
    if remux:  # as the worker cuts a remux: on the keyframes of the source's index (or a scan)
        times = keyframes.read("ffprobe", source, info.video.index, 60).times
        grid = grid_.for_remux(times, info.duration_s, SEGMENT_S, info.video.frame_rate, origin_s=info.start_s)
    else:
        grid = grid_.for_transcode(info.duration_s, info.video.frame_rate, SEGMENT_S,
                                   first_segment_s(spec, DEFAULTS.first_segment_s), origin_s=info.start_s)
    return spec, grid, grid.segment_at(spec.seek_s)


def worker_argv(source, folder, job_id, *, remux=False, seek_s=0.0, bitrate=BITRATE, step=None, lut_dir=None):
    """The command line of the worker's video run for this job, with the worker's default
    settings: on the job's grid, from the segment that holds `seek_s` (at the speed guard's
    `step`, a speed_guard.Step, when given; an HDR10 film tone-mapped by its LUT, made in
    `lut_dir`, when given, else by the chain). It writes into its staging folder under `folder`
    (prepare_folder makes it) and lists each complete segment in its segments.csv
    (first_segment_listed)."""
    spec, grid, number = job_plan(source, folder, job_id, remux=remux, seek_s=seek_s, bitrate=bitrate, step=step)
    output = HlsOutput(job_id, grid, number, fmp4=delivers_hevc(spec))
    lut = tonemap.lut_for(spec.media.video, str(lut_dir)) if lut_dir is not None and spec.tone_mapped else None
    return build_command(spec, output, preset=DEFAULTS.encoder_preset, tonemap_lut=lut)


def worker_audio_argv(source, folder, job_id, *, remux=False, seek_s=0.0):
    """The command line of the run of the job's DEFAULT audio rendition, which the worker starts
    beside the video's (its own staging folder, run id 1)."""
    spec, grid, number = job_plan(source, folder, job_id, remux=remux, seek_s=seek_s)
    rendition = renditions.every(spec.media, spec.audio)[hls_names.audio_rendition(spec.audio.stream)]
    output = HlsOutput(job_id, grid, number, fmp4=delivers_hevc(spec), run_id=1, rendition=rendition.name)
    return build_audio_command(spec, output, rendition)


def jellyfin_argv(source, job_id):
    rate = str(BITRATE)
    return ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-i", f"file:{source}",
            "-map", "0:0", "-map", "0:1", "-map_metadata", "-1", "-map_chapters", "-1",
            "-c:v:0", "libx264", "-preset:v:0", "veryfast", "-crf:v:0", "23", "-maxrate:v:0", rate,
            "-bufsize:v:0", str(2 * BITRATE), "-profile:v:0", "high", "-x264opts:v:0", JELLYFIN_X264,
            "-g:v:0", str(JELLYFIN_SEGMENT_S * 24), "-keyint_min:v:0", str(JELLYFIN_SEGMENT_S * 24),
            "-sc_threshold:v:0", "0", "-vf", "scale=-2:720,format=yuv420p",
            "-force_key_frames:0", f"expr:gte(t,n_forced*{JELLYFIN_SEGMENT_S})",
            "-c:a:0", "aac", "-ac:a:0", "2", "-b:a:0", "160k",
            "-max_delay", "5000000", "-avoid_negative_ts", "disabled",
            "-f", "hls", "-hls_time", str(JELLYFIN_SEGMENT_S), "-hls_segment_type", "mpegts",
            "-start_number", "0", "-hls_segment_filename", f"{job_id}_%d.ts",
            "-hls_playlist_type", "vod", "-hls_list_size", "0", "-y", f"{job_id}.m3u8"]


def staging_of(argv):
    """The staging folder (relative to FFmpeg's working directory) a worker's command writes its
    segments into, from its -segment_list; None for another command (Jellyfin's, decoding)."""
    if "-segment_list" not in argv:
        return None
    return os.path.dirname(argv[argv.index("-segment_list") + 1])


def prepare_folder(argv, folder):
    """FFmpeg's working directory for argv, with the staging folder a worker's run writes into
    (the worker makes it before it starts FFmpeg: the segment muxer does not)."""
    folder.mkdir(parents=True, exist_ok=True)
    staging = staging_of(argv)
    if staging:
        (folder / staging).mkdir(parents=True, exist_ok=True)


def first_segment_listed(argv):
    """The worker's own test, by hand: its run's segment list (<job>.run<n>/segments.csv) has
    its first line: the first segment is complete (the worker moves it into place and serves it)."""
    segment_list = argv[argv.index("-segment_list") + 1]

    def listed(folder):
        try:
            return b"\n" in (folder / segment_list).read_bytes()
        except FileNotFoundError:
            return False
    return listed


def second_segment_begun(job_id):
    """Jellyfin serves a playlist of its own, made in advance, and hands a player segment n once
    FFmpeg has begun segment n + 1 (its VOD playlist is written only at the end)."""
    return lambda folder: (folder / f"{job_id}_1.ts").exists()


def first_playlist_by_hand(argv, folder, playable=None, beside=()):
    """Seconds from spawning argv (in folder), and the commands `beside` it (the worker's audio
    rendition's), until the first segment of each can be served: `playable` (folder) says so; for
    a worker's command, its segment list names a first segment."""
    commands = [argv, *beside]
    checks = [playable or first_segment_listed(argv), *(first_segment_listed(other) for other in beside)]
    for command in commands:
        prepare_folder(command, folder)
    started = time.monotonic()
    procs = [subprocess.Popen(command, cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for command in commands]
    try:
        while True:
            if all(check(folder) for check in checks):
                return time.monotonic() - started
            if any(proc.poll() is not None for proc in procs):
                raise RuntimeError(f"FFmpeg ended without a segment: {commands}")
            time.sleep(0.002)
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
        shutil.rmtree(folder, ignore_errors=True)


# -- the worker ----------------------------------------------------------------------------------
def media_segments(text):
    """[(segment URI, EXTINF seconds)] of a media playlist, and its EXT-X-START offset (0 without)."""
    lines = [line.strip() for line in text.splitlines()]
    segments = [(uri, float(line[8:].split(",")[0]))
                for line, uri in zip(lines, lines[1:]) if line.startswith("#EXTINF:")]
    start = next((float(re.search(r"TIME-OFFSET=([-\d.]+)", line).group(1))
                  for line in lines if line.startswith("#EXT-X-START:")), 0.0)
    return segments, start


def segment_at(segments, seconds):
    """The index in `segments` of the segment that holds film time `seconds`."""
    begins = 0.0
    for n, (_, duration) in enumerate(segments):
        if seconds < begins + duration - 1e-6:
            return n
        begins += duration
    return len(segments) - 1


def fetch(url):
    """GET url to its last byte; (seconds it took, the body). Raises for anything but 200."""
    started = time.perf_counter()
    answer = requests.get(url, timeout=120)
    took = time.perf_counter() - started
    if answer.status_code != 200:
        raise RuntimeError(f"GET {url}: {answer.status_code} {answer.text[:200]}")
    return took, answer.content


def default_audio(multivariant):
    """The URI of the DEFAULT audio rendition's media playlist a multivariant playlist names, or
    None."""
    found = re.search(r'#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="stereo",[^\n]*DEFAULT=YES[^\n]*URI="([^"]+)"', multivariant)
    return found.group(1) if found else None


def first_segment(worker, job_id):
    """What a player does once it is given the stream: the multivariant playlist, then the
    video's media playlist and the DEFAULT audio rendition's side by side, and in each the segment
    where it starts (the one that holds EXT-X-START, segment 0 without), to its last byte.
    Returns the video segment's URI."""
    # the worker holds the multivariant playlist until a segment is made
    text = fetch(f"{worker.url}/{hls_names.multivariant(job_id)}")[1].decode()
    audio = default_audio(text)
    playlists = [hls_names.media_playlist(job_id)] + ([audio] if audio else [])
    uris = [None] * len(playlists)

    def start_of(i):
        segments, start = media_segments(fetch(f"{worker.url}/{playlists[i]}")[1].decode())
        if not segments:
            raise RuntimeError(f"job {job_id}: {playlists[i]} lists no segment")
        uris[i] = segments[segment_at(segments, start)][0]
        fetch(f"{worker.url}/{uris[i]}")

    threads = [threading.Thread(target=start_of, args=(i,)) for i in range(1, len(playlists))]
    for thread in threads:
        thread.start()
    start_of(0)
    for thread in threads:
        thread.join()
    if None in uris:
        raise RuntimeError(f"job {job_id}: the audio rendition's first segment did not come")
    return uris[0]


def playable_after(worker, job_id, body):
    """Seconds from the POST until a player has the first segment it plays (the one that holds
    the seek) to its last byte, through both playlists (first_segment)."""
    started = time.monotonic()
    worker.post_job(body).raise_for_status()
    first_segment(worker, job_id)
    return time.monotonic() - started


def job_body(job_id, source, **configuration):
    return {"job_id": job_id, "source_path": str(source),
            "configuration": {"bitrate_bps": BITRATE, **configuration}}


def with_subtitles(source, path, duration_s):
    """The source with two SubRip tracks (a cue every two seconds), its video and audio copied."""
    srt = path.with_suffix(".srt")
    srt.write_text("".join(f"{i + 1}\n00:{i * 2 // 60:02d}:{i * 2 % 60:02d},000 --> 00:{i * 2 // 60:02d}:"
                           f"{i * 2 % 60:02d},900\nline {i}\n\n" for i in range(duration_s // 2)))
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y", "-i", str(source),
                    "-i", str(srt), "-map", "0", "-map", "1", "-map", "1", "-c", "copy", "-c:s", "srt", str(path)],
                   check=True)
    return path


def first_playlist_subtitles(worker, source, tmp, runs, duration_s):
    """First playlist with subtitles (each run a file never played: its extraction runs at once)
    beside the same source without; a transcode, as most plays are."""
    subtitled, plain = [], []
    for run in range(runs):
        fresh = with_subtitles(source, worker_media(worker) / f"bench subtitled {run}.mkv", duration_s)
        for who in ([0, 1] if run % 2 else [1, 0]):
            job_id = f"subs{who}{run}"
            times = subtitled if who == 0 else plain
            times.append(playable_after(worker, job_id, job_body(job_id, fresh if who == 0 else source,
                                                                 **({"subtitle_stream": 0} if who == 0 else {}))))
            worker.delete(job_id)
    return [Row("first playlist, 2 subtitle tracks", seconds(subtitled), "no subtitles", seconds(plain),
                f"{(median(subtitled) - median(plain)) * 1000:+.0f} ms", "<= +200 ms")]


def jellyfin_first_segment(source, tmp, job_id):
    """Seconds until FFmpeg with Jellyfin's defaults has a first segment to hand a player, at the
    film's start."""
    return first_playlist_by_hand(jellyfin_argv(source, job_id), tmp / "jf", playable=second_segment_begun(job_id))


def first_playlist(worker, source, tmp, runs):
    rows = []
    for remux in (False, True):
        kind = "remux" if remux else "1080p->720p"
        mine, hand, jelly = [], [], []
        for run in range(runs):
            job_id = f"first{int(remux)}{run}"
            # alternate who goes first, so neither always finds a warmer page cache
            order = [0, 1, 2] if run % 2 else [2, 1, 0]
            for who in order:
                if who == 0:
                    mine.append(playable_after(worker, job_id, job_body(job_id, source, force_remux=remux)))
                    worker.delete(job_id)
                elif who == 1:  # the worker's own two commands: the picture, and the sound beside it
                    argv = worker_argv(source, tmp / "hand", f"hand{run}", remux=remux)
                    sound = worker_audio_argv(source, tmp / "hand", f"hand{run}", remux=remux)
                    hand.append(first_playlist_by_hand(argv, tmp / "hand", beside=[sound]))
                elif not remux:
                    jelly.append(jellyfin_first_segment(source, tmp, f"jf{run}"))
        rows.append(Row(f"first playlist, {kind}", seconds(mine), "FFmpeg by hand", seconds(hand),
                        f"{(median(mine) - median(hand)) * 1000:+.0f} ms", "<= +100 ms"))
        if jelly:
            rows.append(Row("", "", "Jellyfin defaults", seconds(jelly),
                            f"{median(mine) / median(jelly):.2f}x", "<= 0.5x"))
    return rows


def seek(worker, source, runs):
    """A re-POST at SEEK_S on a job that is running, beside a new job started there."""
    warm, cold = [], []
    for run in range(runs):
        job_id = f"seek{run}"
        playable_after(worker, job_id, job_body(job_id, source))
        time.sleep(0.5)  # the job is running, with a few segments on disk
        seek_time = time.strftime("%H:%M:%S", time.gmtime(SEEK_S))
        warm.append(playable_after(worker, job_id, job_body(job_id, source, seek_time=seek_time)))
        worker.delete(job_id)
        cold.append(playable_after(worker, f"cold{run}", job_body(f"cold{run}", source, seek_time=seek_time)))
        worker.delete(f"cold{run}")
    return [Row(f"seek to {SEEK_S} s (re-POST)", seconds(warm), "cold start there", seconds(cold),
                f"{median(warm) / median(cold):.2f}x", "<= 1.2x")]


# -- the whole film: a jump far ahead, a made segment again, the keyframe index -------------------
def whole_film(worker, source, tmp, runs):
    """A player of a transcode (1080p -> 720p, the default bitrate) that has segment 0 jumps to
    the segment at JUMP_AT of the film (its request starts a run there; the DEFAULT audio
    rendition's segment there asked for beside it, as players do), then asks for it again
    (it is made: served at once); beside FFmpeg with Jellyfin's defaults making its first segment
    at the film's start, in the same runs. And the keyframe index of a 2-hour film, which a
    remux's grid is cut on (scripts/bench_keyframes.py)."""
    jumps, heard, again, jelly, number = [], [], [], [], None
    for run in range(runs):
        job_id = f"jump{run}"
        for who in ([0, 1] if run % 2 else [1, 0]):  # neither always finds a warmer machine
            if who == 1:
                jelly.append(jellyfin_first_segment(source, tmp, f"jfw{run}"))
                continue
            playable_after(worker, job_id, job_body(job_id, source))  # segment 0, to its last byte
            segments, _ = media_segments(fetch(f"{worker.url}/{hls_names.media_playlist(job_id)}")[1].decode())
            audio = default_audio(fetch(f"{worker.url}/{hls_names.multivariant(job_id)}")[1].decode())
            sound, _ = media_segments(fetch(f"{worker.url}/{audio}")[1].decode())
            number = segment_at(segments, JUMP_AT * sum(d for _, d in segments))
            url = f"{worker.url}/{segments[number][0]}"
            # as a player: the video's segment there and the sound's (the same grid) side by side
            sound_took = []
            beside = threading.Thread(target=lambda: sound_took.append(fetch(f"{worker.url}/{sound[number][0]}")[0]))
            beside.start()
            jumps.append(fetch(url)[0])
            beside.join()
            if not sound_took:
                raise RuntimeError(f"job {job_id}: the sound of segment {number} did not come")
            heard.append(max(jumps[-1], sound_took[0]))
            again.append(fetch(url)[0])
            worker.delete(job_id)
    index = bench_keyframes.measure(tmp / "keyframes")
    rows = [Row(f"jump far ahead 1080p->720p (segment {number} of {len(segments)})", seconds(jumps),
                "Jellyfin's first segment", seconds(jelly), f"{median(jumps) / median(jelly):.2f}x", "<= 0.7x"),
            Row("  and its sound (both to their last byte)", seconds(heard), "", "",
                f"{median(heard) / median(jelly):.2f}x", ""),
            Row("made segment again", f"{median(again) * 1000:.1f} ms", "", "", "", "< 20 ms")]
    for name, took, found, _ in index:
        how = f"{len(found.times)} keyframes from {found.source}" if found else "no index (would scan)"
        rows.append(Row(f"keyframe index of a 2-hour film, {name}", f"{took:.3f} s", how, "", "", "< 0.5 s"))
    return rows


# -- serving: 50 clients, worker beside nginx ----------------------------------------------------
WRK_SCRIPT = """
-- Each connection is one player: the playlist, then the segments in order, then again;
-- paced, it waits between requests like a player ahead of its picture.
local segments = {%s}
local playlist = "%s"
local pause_ms = %d
local step = 0
request = function()
  local path
  if step %% (#segments + 1) == 0 then path = playlist else path = segments[step %% (#segments + 1)] end
  step = step + 1
  return wrk.format("GET", "/" .. path)
end
if pause_ms > 0 then
  -- jittered, so the players do not all ask at the same instant
  delay = function() return pause_ms * (0.5 + math.random()) end
end
"""
# Paced players: a segment every 400 ms each, ten times faster than they play it (a player
# filling its buffer): 125 requests and 250 MB a second from 50 players.
PACED_MS = 400

NGINX_CONF = """
daemon off;
{user}
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 100000;
  types {{ application/vnd.apple.mpegurl m3u8; video/mp2t ts; }}
  client_body_temp_path {tmp}/tmp; proxy_temp_path {tmp}/tmp; fastcgi_temp_path {tmp}/tmp;
  uwsgi_temp_path {tmp}/tmp; scgi_temp_path {tmp}/tmp;
  server {{
    listen 127.0.0.1:{port};
    root {root};
    add_header Access-Control-Allow-Origin *;
  }}
}}
"""


def wrk(url, script, seconds):
    """(bytes per second, requests per second, p50 s, p99 s) of wrk with CLIENTS connections."""
    out = subprocess.run(["wrk", "-t", "2", "-c", str(CLIENTS), "-d", f"{seconds}s", "--latency", "-s", str(script),
                          url], capture_output=True, text=True, check=True).stdout
    if "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(f"wrk on {url} met errors:\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    transfer = re.search(r"Transfer/sec:\s+([\d.]+)(\w+)", out)
    unit = {"B": 1, "KB": 2**10, "MB": 2**20, "GB": 2**30}[transfer.group(2)]
    return (float(transfer.group(1)) * unit, rps,
            _wrk_latency(out, "50%"), _wrk_latency(out, "99%"))


def _wrk_latency(out, percentile):
    value, unit = re.search(rf"{re.escape(percentile)}\s+([\d.]+)(us|ms|s)", out).groups()
    return float(value) * {"us": 1e-6, "ms": 1e-3, "s": 1.0}[unit]


def serving(worker, media_root, tmp, seconds_each, runs):
    """A remux of a 4 Mb/s source (2 MB segments), served to CLIENTS players: flat out
    (throughput) by the worker, nginx and the gunicorn floor; paced like players (latency) by the
    worker and nginx; and by a worker without its nginx front (front = "none")."""
    alone = WorkerProcess(tmp / "worker-alone", media_root, front="none", **BENCH_WORKER).start()
    try:
        return _serving(worker, alone, tmp, seconds_each, runs)
    finally:
        alone.stop()


def _serving(worker, alone, tmp, seconds_each, runs):
    source = make_source(worker_media(worker) / "bench 4mbps.mp4", 60, size="1280x720", video_bitrate=BITRATE)
    job_id = "serve"
    for server in (worker, alone):
        playable_after(server, job_id, {"job_id": job_id, "source_path": str(source),
                                        "configuration": {"force_remux": True}})
        server.wait_state(job_id, {"COMPLETED"})
    made = Path(worker.job(job_id)["output_path"])
    names = sorted((p.name for p in made.glob("*.ts")), key=lambda n: int(n.rsplit("_", 1)[1][:-3]))
    size = statistics.mean((made / n).stat().st_size for n in names)
    # what nginx and the gunicorn floor serve: the same files, and the media playlist (the worker
    # writes it when asked, it is not on disk) as a file
    folder = tmp / "served"
    folder.mkdir()
    for name in names:
        os.link(made / name, folder / name)
    playlist = hls_names.media_playlist(job_id)
    (folder / playlist).write_bytes(requests.get(f"{worker.url}/{playlist}", timeout=10).content)
    open_to_others(folder)
    scripts = {}
    for pause in (0, PACED_MS):
        scripts[pause] = tmp / f"hls-{pause}.lua"
        scripts[pause].write_text(WRK_SCRIPT % (", ".join(f'"{n}"' for n in names),
                                                hls_names.media_playlist(job_id), pause))
    nginx_port, floor_port = free_port(), free_port()
    (tmp / "tmp").mkdir(exist_ok=True)
    conf = tmp / "nginx.conf"
    # as root, its workers run as the worker's own front's do (nginx_user), never as root
    found = front.worker_user(DEFAULTS)
    user = f"user {found[0].pw_name} {found[1]};" if found is not None else ""
    conf.write_text(NGINX_CONF.format(tmp=tmp, port=nginx_port, root=folder, user=user))
    servers = [subprocess.Popen(["nginx", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    urls = {"worker": f"{worker.url}/", "alone": f"{alone.url}/", "nginx": f"http://127.0.0.1:{nginx_port}/",
            "floor": f"http://127.0.0.1:{floor_port}/"}
    results = {(who, pause): [] for who in urls for pause in scripts}
    try:
        servers.append(subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--worker-class", "transcode_worker.server.PlayerThreadWorker",
             "--threads", str(DEFAULTS.http_threads), "--bind", f"127.0.0.1:{floor_port}",
             "--log-level", "warning", "--chdir", str(ROOT / "scripts"), "gunicorn_floor:app"],
            env={**os.environ, "FLOOR_ROOT": str(folder), "PYTHONPATH": str(ROOT)},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        for port in (nginx_port, floor_port):
            wait_for(lambda: port_open(port), 20, what=f"a server on {port}")
        for run in range(runs):
            for pause in scripts:
                # rotate who goes first, so none always finds a warmer machine
                order = [who for who in urls if pause == 0 or who != "floor"]
                for who in order[run % len(order):] + order[:run % len(order)]:
                    results[who, pause].append(wrk(urls[who], scripts[pause], seconds_each))
    finally:
        servers[0].send_signal(signal.SIGQUIT)  # nginx's graceful stop; then gunicorn's, by pid
        for server in servers[1:]:
            server.terminate()
        for server in servers:
            server.wait(30)
    for server in (worker, alone):
        server.delete(job_id)
    label = f"{CLIENTS} clients, {size / 2**20:.1f} MB segments"
    (worker_mbs, worker_vs), (alone_mbs, alone_vs), (floor_mbs, floor_vs), (nginx_mbs, _) = (
        flat_out(results, who) for who in ("worker", "alone", "floor", "nginx"))
    return [
        Row(f"{label}, flat out: throughput", worker_mbs, "nginx sendfile", nginx_mbs, worker_vs, ">= 0.9x"),
        Row("", "", "without the front", alone_mbs, f"{alone_vs} nginx", ""),
        Row("", "", "gunicorn floor", floor_mbs, f"{floor_vs} nginx", ""),
        Row(f"{label}, flat out: p50 / p99", latency(results["worker", 0]), "nginx",
            latency(results["nginx", 0]), "", ""),
        Row(f"{label}, paced: p50 / p99", latency(results["worker", PACED_MS]), "nginx",
            latency(results["nginx", PACED_MS]), "", "p99 < 50 ms"),
        Row("", "", "without the front", latency(results["alone", PACED_MS]), "", ""),
    ]


def flat_out(results, who):
    """Median throughput of `who` flat out, and its ratio to nginx: each run's servers back to
    back, on the machine in the same state, make one ratio; their median and range."""
    ratios = [ours[0] / theirs[0] for ours, theirs in zip(results[who, 0], results["nginx", 0])]
    return (f"{median([r[0] for r in results[who, 0]]) / 2**20:.0f} MB/s",
            f"{median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f})")


def worker_media(worker):
    return Path(worker.settings["media_roots"][0])


def port_open(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def latency(results):
    return f"{median([r[2] for r in results]) * 1000:.1f} / {median([r[3] for r in results]) * 1000:.1f} ms"


# -- pressure: slow clients and waiting players -------------------------------------------------
SLOW_CLIENTS = 1000
WAITING_PLAYERS = 200
PRESSURE_TIMEOUT_S = 2.0  # a request that takes longer is counted as timed out


def pressure(worker, media_root, tmp, source, seconds):
    """The API and a ready playlist while SLOW_CLIENTS connections trickle their headers, and
    while WAITING_PLAYERS players wait on segments FFmpeg has not written: the worker (behind
    its nginx front) beside the same worker without it (front = "none")."""
    alone = WorkerProcess(tmp / "worker-alone", media_root, front="none", **BENCH_WORKER).start()
    short = make_source(media_root / "bench pressure.mp4", 4)
    try:
        figures = {}
        for who, server in (("worker", worker), ("alone", alone)):
            playable_after(server, "ready", job_body("ready", short, force_remux=True))
            server.wait_state("ready", {"COMPLETED"})
            server.post_job(job_body("far", source)).raise_for_status()
            far = len(media_segments(requests.get(f"{server.url}/{hls_names.media_playlist('far')}",
                                                  timeout=60).text)[0]) // 2
            with SlowClients(server.settings["listen"], SLOW_CLIENTS):
                time.sleep(2)
                figures[who, "slow"] = api_latencies(server, short, seconds)
            with WaitingPlayers(server.url, "far", far, WAITING_PLAYERS):
                time.sleep(2)
                figures[who, "waiting"] = api_latencies(server, short, seconds)
            for job_id in ("ready", "far"):
                server.delete(job_id)
    finally:
        alone.stop()
    rows = []
    for scenario, label in (("slow", f"{SLOW_CLIENTS:,} slow-header clients"),
                            ("waiting", f"{WAITING_PLAYERS} players waiting on FFmpeg")):
        for n, kind in enumerate(("POST + DELETE /v1/jobs", "/healthz", "ready playlist")):
            rows.append(Row(f"{label}: {kind} p99" if n == 0 else f"  {kind} p99", p99(figures["worker", scenario][kind]),
                            "without the front", p99(figures["alone", scenario][kind]), "", "< 100 ms"))
    return rows


class WaitingPlayers:
    """`count` players that jumped to segment `first` of `job_id`, in the middle of the film,
    beyond what FFmpeg has written (the first to ask starts a run there): each waits for its
    segment, then asks for the next at once, so all of them wait on the segment FFmpeg is
    making; after a 503 (Retry-After: 1) each asks again a second later. They ask with HEAD,
    which waits as a GET does, so what is measured is the waiting, not the transfer of 200 copies
    of each segment. They run in a process of their own, so their threads do not slow the
    measuring client down."""

    def __init__(self, url, job_id, first, count):
        self._stop = multiprocessing.Event()
        self._process = multiprocessing.Process(target=self._run, args=(url, job_id, first, count, self._stop),
                                                daemon=True)

    @staticmethod
    def _run(url, job_id, first, count, stop):
        def play():
            number = first
            while not stop.is_set():
                try:
                    answer = requests.head(f"{url}/{hls_names.segment(job_id, number, 'ts')}", timeout=90)
                    if answer.status_code == 200:
                        number += 1
                    elif answer.status_code == 404:  # past the film's end: nothing left to wait on
                        return
                    else:
                        stop.wait(float(answer.headers.get("Retry-After", 1)))
                except requests.RequestException:
                    stop.wait(1)

        threads = [threading.Thread(target=play, daemon=True) for _ in range(count)]
        for thread in threads:
            thread.start()
        stop.wait()

    def __enter__(self):
        self._process.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()  # requests still waiting are dropped with the process
        self._process.join(10)
        if self._process.is_alive():
            self._process.kill()


def api_latencies(server, source, seconds):
    """Seconds each request took (None: timed out), by kind, asked in turn for `seconds`: a new
    job posted and deleted (an orchestrator's commands), /healthz, and a ready playlist."""
    took = {"POST + DELETE /v1/jobs": [], "/healthz": [], "ready playlist": []}
    deadline = time.monotonic() + seconds
    n = 0
    while time.monotonic() < deadline:
        n += 1
        job_id = f"cmd{n}"
        body = job_body(job_id, source, force_remux=True)
        took["POST + DELETE /v1/jobs"].append(_timed("POST", f"{server.url}/v1/jobs", json=body))
        took["POST + DELETE /v1/jobs"].append(_timed("DELETE", f"{server.url}/v1/jobs/{job_id}"))
        took["/healthz"].append(_timed("GET", f"{server.url}/healthz"))
        took["ready playlist"].append(_timed("GET", f"{server.url}/{hls_names.media_playlist('ready')}"))
    return took


def _timed(method, url, **kwargs):
    started = time.perf_counter()
    try:
        answer = requests.request(method, url, timeout=PRESSURE_TIMEOUT_S, **kwargs)
    except requests.RequestException:
        return None
    if answer.status_code >= 400:
        return None
    return time.perf_counter() - started


def p99(values):
    """The 99th percentile in ms, and how many of the requests failed or timed out."""
    answered = sorted(v for v in values if v is not None)
    failed = len(values) - len(answered)
    if failed > len(values) // 100:
        return f"{failed} of {len(values)} failed or > {PRESSURE_TIMEOUT_S:.0f} s"
    return f"{answered[min(len(answered) - 1, int(len(answered) * 0.99))] * 1000:.0f} ms (of {len(values)})"


# -- idle ----------------------------------------------------------------------------------------
def idle(worker, seconds):
    """CPU share of one core and resident memory of the worker (gunicorn master + app process),
    standing idle; and the heartbeat's telemetry collection time."""
    procs = [psutil.Process(worker.proc.pid), *worker.descendants()]
    time.sleep(3)  # let start-up settle
    before = sum(sum(p.cpu_times()[:2]) for p in procs)
    time.sleep(seconds)
    cpu = (sum(sum(p.cpu_times()[:2]) for p in procs) - before) / seconds
    rss = sum(p.memory_info().rss for p in procs)
    pss = sum(p.memory_full_info().pss for p in procs)  # what the two processes share, counted once
    telemetry = Telemetry()
    times = []
    for _ in range(20):
        telemetry.collect()
        times.append(telemetry.last_collect_s)
        time.sleep(0.05)
    return [
        Row("idle: CPU", f"{cpu * 100:.2f} % of a core", "", "", "", "< 1 %"),
        Row("idle: resident memory (PSS)", f"{pss / 2**20:.0f} MB", "RSS, shared twice", f"{rss / 2**20:.0f} MB",
            "", "< 80 MB"),
        Row("heartbeat telemetry collection", f"{median(times) * 1000:.1f} ms", "", "", "", ""),
    ]


# -- N concurrent transcodes ---------------------------------------------------------------------
def concurrent(worker, source, tmp, duration_s, counts, runs):
    rows = []
    for n in counts:
        ours, theirs = zip(*(concurrent_once(worker, source, tmp, duration_s, n) for _ in range(runs)))
        rows.append(Row(f"{n} concurrent transcode{'s' if n > 1 else ''}: speed", f"{median(ours):.2f}x",
                        f"{n} FFmpeg by hand", f"{median(theirs):.2f}x", f"{median(ours) / median(theirs):.2f}x",
                        ""))
    return rows


def concurrent_once(worker, source, tmp, duration_s, n):
    """Aggregate speed (movie seconds written per second) of n jobs, then of n FFmpeg by hand."""
    started = time.monotonic()
    for i in range(n):
        worker.post_job(job_body(f"conc{n}-{i}", source)).raise_for_status()
    for i in range(n):
        worker.wait_state(f"conc{n}-{i}", {"COMPLETED"}, timeout=3600)
    ours = n * duration_s / (time.monotonic() - started)
    for i in range(n):
        worker.delete(f"conc{n}-{i}")
    folders = [tmp / f"conc{n}-{i}" for i in range(n)]
    argvs = [worker_argv(source, folder, f"c{i}") for i, folder in enumerate(folders)]
    for argv, folder in zip(argvs, folders):
        prepare_folder(argv, folder)
    started = time.monotonic()
    procs = [subprocess.Popen(argv, cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for argv, folder in zip(argvs, folders)]
    for proc in procs:
        proc.wait()
    theirs = n * duration_s / (time.monotonic() - started)
    for folder in folders:
        shutil.rmtree(folder)
    return ours, theirs


# -- throttling ----------------------------------------------------------------------------------
def viewer(worker, job_id, stop, rendition=None):
    """A player at 1x: one segment buffered ahead of the picture, the next asked for when the
    one before starts playing (and the audio `rendition`'s beside it). The media playlist lists
    the whole film from the first answer: it is read once, and each segment is asked for (the
    worker holds the request until it is made)."""
    segments, start = media_segments(requests.get(f"{worker.url}/{hls_names.media_playlist(job_id)}",
                                                  timeout=60).text)
    played, started = 0.0, time.monotonic()
    for number, (uri, duration) in enumerate(segments[segment_at(segments, start):], segment_at(segments, start)):
        uris = [uri] + ([hls_names.audio_segment(job_id, rendition, number, "ts")] if rendition else [])
        if stop.is_set() or any(requests.get(f"{worker.url}/{u}", timeout=60).status_code != 200 for u in uris):
            return
        stop.wait(max(0.0, started + played - time.monotonic()))  # until it starts playing
        played += duration


def ffmpeg_cpu(worker):
    total = 0.0
    for proc in worker.descendants():
        try:
            if proc.name() == "ffmpeg":
                total += sum(proc.cpu_times()[:2])
        except psutil.NoSuchProcess:
            pass
    return total


def throttling(media_root, tmp, source, viewers, window_s, lead_s):
    results = {}
    for label, lead in (("throttled", lead_s), ("unthrottled", 0)):
        worker = WorkerProcess(tmp / f"throttle-{label}", media_root, throttle_lead_s=lead,
                               max_concurrent_jobs=viewers, **BENCH_WORKER).start()
        try:
            stop = threading.Event()
            threads = []
            for i in range(viewers):
                worker.post_job(job_body(f"view{i}", source, bitrate_bps=1_000_000)).raise_for_status()
                threads.append(threading.Thread(target=viewer, args=(worker, f"view{i}", stop), daemon=True))
                threads[-1].start()
            time.sleep(2)
            before, started = ffmpeg_cpu(worker), time.monotonic()
            time.sleep(window_s)
            results[label] = (ffmpeg_cpu(worker) - before) / (time.monotonic() - started)
            stop.set()
            for thread in threads:
                thread.join(60)
            for i in range(viewers):
                worker.delete(f"view{i}")
        finally:
            worker.stop()
    on, off = results["throttled"], results["unthrottled"]
    return [Row(f"{viewers} viewers at 1x: FFmpeg CPU", f"{on * 100:.0f} % of a core",
                "throttling off", f"{off * 100:.0f} %", f"{(off - on) * 100:.0f} % freed",
                f"lead {lead_s:g} s")]


# -- audio renditions ----------------------------------------------------------------------------
def with_second_language(source, path):
    """`source` with a second audio track (German, another tone), its video copied."""
    seconds = media.run_ffprobe("ffprobe", str(source)).duration_s
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y", "-i", str(source),
                    "-f", "lavfi", "-i", f"sine=frequency=660:duration={seconds}", "-map", "0:v", "-map", "0:a",
                    "-map", "1:a", "-c:v", "copy", "-c:a", "aac", "-metadata:s:a:0", "language=eng",
                    "-metadata:s:a:1", "language=deu", str(path)], check=True)
    return path


def audio_switch(worker, source, tmp, runs):
    """A viewer in the middle of a 1080p film (its video and English segment there fetched)
    switches to German: the German segment at its position, to its last byte."""
    two = with_second_language(source, tmp / "media" / "bench two languages.mp4")
    switches, number = [], None
    for run in range(runs):
        job_id = f"switch{run}"
        playable_after(worker, job_id, job_body(job_id, two))
        segments, _ = media_segments(fetch(f"{worker.url}/{hls_names.media_playlist(job_id)}")[1].decode())
        number = segment_at(segments, 0.5 * sum(d for _, d in segments))
        fetch(f"{worker.url}/{segments[number][0]}")  # the viewer is there
        fetch(f"{worker.url}/{hls_names.audio_segment(job_id, 'audio0', number, 'ts')}")
        switches.append(fetch(f"{worker.url}/{hls_names.audio_segment(job_id, 'audio1', number, 'ts')}")[0])
        worker.delete(job_id)
    return [Row(f"audio track switch (segment {number}, the new track's segment)", seconds(switches), "", "", "",
                "< 1 s")]


def is_audio_run(proc):
    try:
        return proc.name() == "ffmpeg" and "-vn" in proc.cmdline()
    except psutil.NoSuchProcess:
        return False


def rendition_cost(media_root, tmp, source, window_s):
    """A viewer at 1x of a film with its default audio rendition, throttling as a user has it:
    the CPU of the rendition's FFmpeg beside the video's, over the first window_s of play (which
    holds the rendition's run's start, ahead of the viewer as far as throttling lets it)."""
    worker = WorkerProcess(tmp / "renditions", media_root, **BENCH_WORKER).start()
    try:
        stop = threading.Event()
        worker.post_job(job_body("cost", source, bitrate_bps=1_000_000)).raise_for_status()
        thread = threading.Thread(target=viewer, args=(worker, "cost", stop, "audio0"), daemon=True)
        thread.start()
        times, started = {}, time.monotonic()
        while time.monotonic() - started < window_s:
            for proc in worker.descendants():
                try:
                    if proc.name() == "ffmpeg":
                        times[(proc.pid, is_audio_run(proc))] = sum(proc.cpu_times()[:2])
                except psutil.NoSuchProcess:
                    pass
            time.sleep(0.2)
        took = time.monotonic() - started
        stop.set()
        thread.join(60)
        worker.delete("cost")
    finally:
        worker.stop()
    audio = sum(t for (_, is_audio), t in times.items() if is_audio) / took
    video = sum(t for (_, is_audio), t in times.items() if not is_audio) / took
    return [Row(f"audio rendition while played at 1x ({window_s:g} s)", f"{audio * 100:.1f} % of a core",
                "the video's run", f"{video * 100:.0f} %", "", "< 5 %")]


# -- tone-mapping --------------------------------------------------------------------------------
def make_hdr_source(path, seconds, size="3840x2160"):
    """A 24 fps HDR10 source (PQ, BT.2020, HEVC 10-bit with mastering metadata) of a moving picture."""
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
                    "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=24:duration={seconds},"
                    "zscale=tin=bt709:min=bt709:pin=bt709:rin=tv:t=smpte2084:p=bt2020:m=bt2020nc:r=tv:npl=100,"
                    "format=yuv420p10le",
                    "-c:v", "libx265", "-preset", "ultrafast", "-g", "48", "-x265-params",
                    "log-level=error:colorprim=bt2020:transfer=smpte2084:colormatrix=bt2020nc:hdr10=1"
                    ":master-display=G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(10000000,1)"
                    ":max-cll=1000,400", str(path)], check=True)
    return path


def speed_by_hand(argv, folder, duration_s):
    """How many times real time FFmpeg runs argv (in folder) from start to end."""
    prepare_folder(argv, folder)
    started = time.monotonic()
    subprocess.run(argv, cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    elapsed = time.monotonic() - started
    shutil.rmtree(folder, ignore_errors=True)
    return duration_s / elapsed


def without(argv, options):
    """The command without the consecutive `options` (a list, as the command has them)."""
    for at in range(len(argv) - len(options) + 1):
        if argv[at:at + len(options)] == options:
            return [*argv[:at], *argv[at + len(options):]]
    raise ValueError(f"{options} not in the command")


def with_filters(argv, change):
    """The command with its -vf filter list changed by change(list)."""
    at = argv.index("-vf") + 1
    return [*argv[:at], ",".join(change(argv[at].split(","))), *argv[at + 1:]]


def _split_resize(filters):
    """(scale filter for the output size, the filters with zscale's own resize taken out)."""
    first = filters[0].split(":")
    size = [p for p in first if p.startswith(("zscale=w=", "w=", "h="))]
    width, height = (p.split("=")[-1] for p in size)
    rest = ":".join(p for p in first if p not in size)
    return f"scale={width}:{height}", ["zscale=" + rest, *filters[1:]]


def scaled_before(filters):
    """The worker's chain before it let zscale scale: FFmpeg's scale filter, then the tone-map."""
    scale, rest = _split_resize(filters)
    return [scale, *rest]


def tone_map_first(filters):
    """The picture tone-mapped at its full size, then scaled."""
    scale, rest = _split_resize(filters)
    return [*rest[:-1], scale, rest[-1]]


def no_tone_map(filters):
    scale, rest = _split_resize(filters)
    return [scale, rest[-1]]


def tone_mapping(media_root, tmp, seconds, runs):
    """The worker's HDR10 transcode (scaled by zscale as it is linearised, then tone-mapped),
    beside its chain before (FFmpeg's scale filter first), beside tone-mapping first, and beside
    no tone-mapping at all (what the tone-map itself costs: decoding 4K HEVC 10-bit is most of
    the work)."""
    hdr = make_hdr_source(media_root / "bench 4k hdr10 short.mkv", seconds)
    argv = worker_argv(hdr, tmp / "tm", "tm")
    mine, before, first, plain = [], [], [], []
    for _ in range(runs):
        mine.append(speed_by_hand(argv, tmp / "tm", seconds))
        before.append(speed_by_hand(with_filters(argv, scaled_before), tmp / "tm", seconds))
        first.append(speed_by_hand(with_filters(argv, tone_map_first), tmp / "tm", seconds))
        plain.append(speed_by_hand(with_filters(argv, no_tone_map), tmp / "tm", seconds))
    return [Row("4K HDR10 -> 720p SDR: speed", f"{median(mine):.2f}x", "scale filter first",
                f"{median(before):.2f}x", f"{median(mine) / median(before):.2f}x", ""),
            Row("", "", "tone-mapped at 4K", f"{median(first):.2f}x", f"{median(mine) / median(first):.2f}x", ""),
            Row("", "", "not tone-mapped", f"{median(plain):.2f}x",
                f"{median(mine) / median(plain):.2f}x", "")]


# -- 4K HDR in real time, and the speed guard (issue 17) ------------------------------------------
HDR_RUNGS = ((720, 4_000_000), (1080, 8_000_000))


def jellyfin_hdr_argv(source, height, bitrate):
    """FFmpeg with Jellyfin's software tone-mapping chain (its EncodingHelper without a GPU:
    zscale to linear light with the scale, hable (its bt2390 needs its own FFmpeg build), back to
    BT.709) and its x264 settings."""
    chain = (f"zscale=w=-2:h={height}:t=linear:npl=100,format=gbrpf32le,zscale=p=bt709,"
             "tonemap=tonemap=hable:desat=0:peak=100,zscale=t=bt709:m=bt709:r=tv,format=yuv420p")
    return ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-i", f"file:{source}",
            "-map", "0:v:0", "-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-maxrate", str(bitrate),
            "-bufsize", str(2 * bitrate), "-x264opts", JELLYFIN_X264, "-vf", chain, "-f", "null", "-"]


def hdr_real_time(media_root, tmp, seconds):
    """A 4K HDR10 film to 720p and 1080p SDR: the worker's job (first playlist, then the speed
    its viewer gets, speed guard and all) beside its own command by hand (sustained speed),
    Jellyfin's chain by hand, and decoding alone (the ceiling)."""
    hdr = make_hdr_source(media_root / "bench 4k hdr10.mkv", seconds)
    decoding = ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-i", f"file:{hdr}", "-map", "0:v:0",
                "-f", "null", "-"]
    decode = median([speed_by_hand(decoding, tmp / "decode", seconds) for _ in range(3)])  # the goal's yardstick
    rows = [Row(f"4K HDR10 ({seconds} s), decode only: speed (3 runs)", f"{decode:.2f}x", "", "", "", "the ceiling")]
    luts = tmp / "luts"
    for height, bitrate in HDR_RUNGS:
        command = worker_argv(hdr, tmp / "hdr", "hdr", bitrate=bitrate, lut_dir=luts)
        by_hand = speed_by_hand(command, tmp / "hdr", seconds)
        chain = speed_by_hand(worker_argv(hdr, tmp / "hdr", "hdr", bitrate=bitrate), tmp / "hdr", seconds)
        # the command as a light source gets it: x264's full veryfast analysis
        full = speed_guard.Step(0, DEFAULTS.encoder_preset, height, bitrate)
        analysed = speed_by_hand(worker_argv(hdr, tmp / "hdr", "hdr", bitrate=bitrate, step=full, lut_dir=luts),
                                 tmp / "hdr", seconds)
        decoded = speed_by_hand(without(command, LIGHT_DECODE), tmp / "hdr", seconds)
        jellyfin = speed_by_hand(jellyfin_hdr_argv(hdr, height, bitrate), tmp / "jf", seconds)
        worker = WorkerProcess(tmp / f"hdr-worker-{height}", media_root, **BENCH_WORKER).start()
        try:
            first, speed, step = job_speed(worker, hdr, bitrate, seconds)
        finally:
            worker.stop()
        goal = ">= 1.1x, first playlist <= 1.5 s" if height == 720 else f">= {0.5 * decode:.2f}x (0.5 ceiling)"
        rows += [
            Row(f"4K HDR10 -> {height}p SDR: command by hand", f"{by_hand:.2f}x", "Jellyfin's chain",
                f"{jellyfin:.2f}x", f"{by_hand / jellyfin:.2f}x", goal),
            Row("  the same with the chain, not the LUT", f"{chain:.2f}x", "the command", f"{by_hand:.2f}x",
                f"{by_hand / chain:.2f}x", ""),
            Row("  the same with x264's full veryfast analysis", f"{analysed:.2f}x", "the command",
                f"{by_hand:.2f}x", f"{by_hand / analysed:.2f}x", ""),
            Row("  the same decoding every loop filter", f"{decoded:.2f}x", "the command",
                f"{by_hand:.2f}x", f"{by_hand / decoded:.2f}x", ""),
            Row(f"  the job: first playlist / speed ({step})", f"{first:.2f} s / {speed:.2f}x", "decode only",
                f"{decode:.2f}x", f"{speed / decode:.2f} ceiling", ""),
        ]
    return rows


def job_speed(worker, source, bitrate, seconds):
    """(seconds to the first playlist, movie seconds written per second from then to the end,
    the speed guard's step at the end) of one job."""
    started = time.monotonic()
    playable_after(worker, "hdr", job_body("hdr", source, bitrate_bps=bitrate))
    first = time.monotonic() - started
    position = worker.job("hdr")["position_s"]
    job = worker.wait_state("hdr", {"COMPLETED", "FAILED"}, timeout=600)
    speed = (seconds - position) / (time.monotonic() - started - first)
    guard = job["speed_guard"]
    worker.delete("hdr")
    return first, speed, f"step {guard['step']} of {guard['steps']}"


def guard_under_a_viewer(media_root, tmp, seconds):
    """A source too heavy for its first step (4K HDR10 to 1080p with x264's medium preset, an
    operator's choice of quality, on this machine), played from its first playlist by a viewer
    at 1x: the stalls it saw after its first 10 s, when the stream ran ahead of it for good, and
    the step the guard took; beside the same with the guard off."""
    hdr = make_hdr_source(media_root / "bench 4k hdr10.mkv", seconds)
    rows = []
    for label, guard_s in (("speed guard on (3 s)", 3.0), ("speed guard off", 0)):
        worker = WorkerProcess(tmp / f"guard-{guard_s}", media_root, speed_guard_s=guard_s, encoder_preset="medium",
                               **BENCH_WORKER).start()
        try:
            posted = time.monotonic()
            worker.post_job(job_body("heavy", hdr, bitrate_bps=8_000_000)).raise_for_status()
            stalls, ahead_at = viewer_at_1x(worker, "heavy")
            job = worker.wait_state("heavy", {"COMPLETED", "FAILED"}, timeout=600)
            guard = job["speed_guard"] or {}
            stepped = (f"step {guard['step']}: {guard['preset']}{', light' if guard['light_analysis'] else ''}"
                       f" at {guard['height']}p" if guard.get("step") else "no step")
            worker.delete("heavy")
        finally:
            worker.stop()
        late = [s for s in stalls if s[0] > 10.0]
        rows.append(Row(f"heavy source, viewer at 1x, {label}: stalls after 10 s (all)",
                        f"{len(late)}, {sum(s[1] for s in late):.1f} s ({len(stalls)}, {sum(s[1] for s in stalls):.1f} s)",
                        "ahead for good after", f"{ahead_at - posted:.1f} s", stepped, "0" if guard_s else ""))
    return rows


STALL_MIN_S = 0.25  # shorter waits are not counted


def viewer_at_1x(worker, job_id):
    """A player at 1x from the first playlist on: it fetches the segments in order, each as soon
    as it has the one before (the media playlist lists the whole film at once: a segment is there
    when its GET answers), needs each when its playhead gets there, and stalls until it has it.
    Returns ([(playhead seconds, stall seconds)], the monotonic time its last stall ended: from
    then on the stream stayed ahead of it)."""
    fetch(f"{worker.url}/{hls_names.multivariant(job_id)}")  # waits for the first segment
    segments, start = media_segments(fetch(f"{worker.url}/{hls_names.media_playlist(job_id)}")[1].decode())
    clock = time.monotonic()  # the wall time its playhead was at 0, moved on by each stall
    playhead, stalls, ahead_at = 0.0, [], clock
    for uri, duration in segments[segment_at(segments, start):]:
        while (answer := requests.get(f"{worker.url}/{uri}", timeout=120)).status_code == 503:
            time.sleep(float(answer.headers.get("Retry-After", 1)))  # a wait that ran out: ask again
        answer.raise_for_status()
        now = time.monotonic()
        late = now - (clock + playhead)  # > 0: the viewer needed this segment that long ago
        if late > STALL_MIN_S:
            stalls.append((playhead, late))
            clock += late
            ahead_at = now
        playhead += duration
    return stalls, ahead_at


# -- the table -----------------------------------------------------------------------------------
class Row:
    def __init__(self, measure, worker, reference, reference_value, versus, target):
        self.cells = [measure, worker, reference, reference_value, versus, target]


def median(values):
    return statistics.median(values)


def seconds(values):
    return f"{median(values):.3f} s"


def failover(media_root, tmp, source, seconds, runs):
    """The orchestrator under 1,000 steered viewers; a worker's death under a viewer (bench_failover.py)."""
    p50, p99, rate = bench_failover.orchestrator_load(tmp, seconds)
    rows = [Row(f"orchestrator, {bench_failover.VIEWERS} steered viewers ({rate:.0f} answers/s): p50",
                f"{p50:.1f} ms", "", "", "", ""),
            Row("  p99", f"{p99:.1f} ms", "", "", "", "< 20 ms")]
    for death, goal in (("death note", "<= 3 s"), ("silent", "<= 5 s")):
        stall, runs_ok = bench_failover.failover_stall(media_root, tmp, source, death, runs)
        rows.append(Row(f"failover, {death}: stall with nothing buffered ({runs_ok}/{runs} moved)",
                        f"{stall:.2f} s" if stall is not None else "failed", "", "", "", goal))
    return rows


def print_table(rows, args, elapsed):
    header = ["measure", "worker", "reference", "", "vs", "target"]
    widths = [max(len(str(r.cells[i])) for r in rows + [Row(*header)]) for i in range(6)]
    cpu = (platform.processor() or platform.machine())
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    ffmpeg = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True).stdout.split("\n")[0]
    print()
    print(f"transcode-worker bench: {args.runs} runs each (medians), {os.cpu_count()} CPUs ({cpu}), "
          f"{psutil.virtual_memory().total / 2**30:.0f} GiB, {ffmpeg.split(' Copyright')[0]}, "
          f"{platform.python_implementation()} {platform.python_version()}; {elapsed:.0f} s")
    line = "  ".join("=" * w for w in widths)
    print(line)
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip())
    print(line)
    for row in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(row.cells, widths)).rstrip())
    print(line)



PARTS = ("idle", "first-playlist", "subtitles", "seek", "whole-film", "audio", "serving", "pressure", "concurrent", "throttling",
         "tone-mapping", "hdr", "speed-guard", "failover")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="repetitions of each measure (default 5)")
    parser.add_argument("--quick", action="store_true", help="fewer and shorter runs: a smoke test")
    parser.add_argument("--only", type=lambda text: set(text.split(",")), default=set(PARTS),
                        help=f"a comma-separated choice of {','.join(PARTS)} (default: all)")
    args = parser.parse_args()
    if args.quick:
        args.runs = 1
    if args.only - set(PARTS):
        sys.exit(f"--only: unknown {', '.join(sorted(args.only - set(PARTS)))}; choose from {', '.join(PARTS)}")
    for tool in ("ffmpeg", "nginx", "wrk"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is missing: `make bench` installs it")

    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="tw-bench-") as tmp:
        tmp = Path(tmp)
        media_root = tmp / "media"
        media_root.mkdir()
        print("making the sources...", file=sys.stderr)
        source = make_source(media_root / "bench 1080p.mp4", 120)
        short = make_source(media_root / "bench 1080p short.mp4", 6 if args.quick else 12)
        rows = []

        def part(name, measure, *arguments):
            if name in args.only:
                print(f"{name}...", file=sys.stderr)
                rows.extend(measure(*arguments))

        worker = WorkerProcess(tmp / "worker", media_root, max_concurrent_jobs=8, throttle_lead_s=0, **BENCH_WORKER).start()
        try:
            part("idle", idle, worker, 5 if args.quick else 20)
            playable_after(worker, "warm", job_body("warm", source))  # page cache, probe cache
            worker.delete("warm")
            part("first-playlist", first_playlist, worker, source, tmp, args.runs)
            part("subtitles", first_playlist_subtitles, worker, source, tmp, args.runs, 120)
            part("seek", seek, worker, source, args.runs)
            part("whole-film", whole_film, worker, source, tmp, args.runs)
            part("audio", audio_switch, worker, source, tmp, args.runs)
            # short runs, many of them: this machine's speed drifts more over a minute than
            # over the few seconds that one worker-and-nginx pair takes
            part("serving", serving, worker, media_root, tmp, 2 if args.quick else 4,
                 1 if args.quick else max(args.runs, 6))
            part("pressure", pressure, worker, media_root, tmp, source, 5 if args.quick else 15)
            part("concurrent", concurrent, worker, short, tmp, media.run_ffprobe("ffprobe", str(short)).duration_s,
                 (1, 2) if args.quick else (1, 2, 4), min(args.runs, 3))
        finally:
            worker.stop()
        if args.only & {"throttling", "audio"}:
            light = make_source(media_root / "bench 360p.mp4", 600, size="640x360")
            part("throttling", throttling, media_root, tmp, light, 3, 10 if args.quick else 30, 8)
            part("audio", rendition_cost, media_root, tmp, light, 10 if args.quick else 40)
        part("tone-mapping", tone_mapping, media_root, tmp, 3 if args.quick else 6, min(args.runs, 3))
        part("hdr", hdr_real_time, media_root, tmp, 8 if args.quick else 30)
        part("speed-guard", guard_under_a_viewer, media_root, tmp, 20 if args.quick else 40)
        part("failover", failover, media_root, tmp, source, 10 if args.quick else 30, min(args.runs, 3))
    print_table(rows, args, time.monotonic() - started)


if __name__ == "__main__":
    main()
