"""`maskrt batch`: the Ray path against plain `maskrt run` over the same inputs, in one run, and
the workers' memory when the decoded inputs are much larger than a worker's memory.

Engine: the bundled model's CPU engine (its native 320/320 input policy). Every variant writes
the same outputs (annotated H.264 MP4 + JSON lines per video) and uses both cores.

Group "batch throughput", VIDEOS clips of 240x320, FRAMES frames each:
- `test_plain_run` (baseline): `maskrt run` on each clip in turn, in this process, 2 threads
  (each run loads the engine, as a shell loop over `maskrt run` would).
- `test_batch[local]`: `maskrt batch` without --ray (the same worker, in this process), 2 threads.
- `test_batch[ray_1x2]` / `[ray_2x1]`: `maskrt batch --ray` on a local Ray started by the
  command: 1 worker with 2 CPUs (2 threads) / 2 workers with 1 CPU each. The timed call
  includes starting Ray and the workers (each imports maskrt and loads the engine).
`vs baseline` in the report is the wall-time ratio (plain median / this median). extra_info:
fps (frames / wall time), fps_steady (Ray: from the first unit handed out to the last result),
startup_s (wall time before that), cpu_s (CPU seconds of this process and every process it
started: Ray's gcs, raylet, agents, workers), cpu_vs_plain (cpu_s / the plain run's), and
loadavg_1m (the shared machine's load: read wall-time ratios only between rows of similar load).

Group "batch memory": LONG_VIDEOS clips of 720x1280 x LONG_FRAMES frames (decoded as RGB:
2.76 MB a frame) through `maskrt batch --ray` with 2 workers, then clips 10 times shorter the
same way; a thread samples the RSS of every Ray worker every 0.2 s. The baseline is `maskrt
run` on one long clip in its own process. extra_info: decoded_mb, peak_worker_rss_mb (largest
sample of one worker; peak_rss_mb for the baseline), decoded_per_worker_peak (decoded_mb / the
workers' summed peaks), input_mb (the MP4s). The machine's 24 GB cannot be outgrown in a
benchmark's time; what carries over to inputs larger than memory is that the peak does not
grow with the input's length (a worker holds a few frames in flight, never a video).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import psutil
import pytest

import maskrt
from maskrt.options import LoadOptions
from maskrt.cli import main
from maskrt.data import generate_video
from maskrt.distributed import BatchOptions, run_batch

BUNDLED = Path(maskrt.__file__).parent / "assets" / "shapes_r18fpn64.safetensors"
VIDEOS, FRAMES, SIZE = 4, 30, (240, 320)
LONG_VIDEOS, LONG_FRAMES, SHORT_FRAMES, LONG_SIZE = 4, 120, 12, (720, 1280)


@pytest.fixture(scope="module")
def engine(tmp_path_factory) -> Path:
    from maskrt.builders import build_engine

    return Path(build_engine(BUNDLED, tmp_path_factory.mktemp("engine") / "shapes.maskrt", "cpu", "fp32",
                             progress=False))


def clips(folder: Path, count: int, frames: int, size) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = [generate_video(folder / f"clip{i}.mp4", num_frames=frames, fps=30, size=size, seed=i, crf=23)
             for i in range(count)]
    for path in paths:
        path.with_suffix(".json").unlink(missing_ok=True)
    return paths


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> list[Path]:
    return clips(tmp_path_factory.mktemp("clips"), VIDEOS, FRAMES, SIZE)


def batch(engine, paths, out, **kw):
    return run_batch(BatchOptions(sources=[str(p) for p in paths], model=str(engine), out_dir=out, quiet=True,
                                  **kw))


def load_info(benchmark) -> None:
    """The machine's 1-minute load average after the benchmark: other jobs on a shared 2-core
    machine slow every variant, so read wall-time ratios only between rows with similar load."""
    benchmark.extra_info["loadavg_1m"] = round(os.getloadavg()[0], 1)


def is_ray_worker(proc: psutil.Process) -> bool:
    return (proc.cmdline() or [""])[0].startswith("ray::Worker")


class TreeSampler:
    """Every 0.2 s: CPU seconds (user + system) of this process and each of its descendants
    (Ray's gcs, raylet, agents and workers when this process started Ray), and the peak RSS of
    the descendants `track` selects. cpu_seconds: CPU used while inside, over all of them (a
    process's last 0.2 s before exiting is missed). Contention from other jobs stretches wall
    time far more than CPU time, which makes CPU the steadier overhead figure here."""

    def __init__(self, track=is_ray_worker):
        self.root, self.track = psutil.Process(), track
        self.cpu: dict[int, float] = {}
        self.start: dict[int, float] = {}
        self.peaks: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        for proc in [self.root, *self.root.children(recursive=True)]:
            try:
                with proc.oneshot():
                    times = proc.cpu_times()
                    self.cpu[proc.pid] = times.user + times.system
                    self.start.setdefault(proc.pid, self.cpu[proc.pid] if not self._started else 0.0)
                    if proc.pid != self.root.pid and self.track(proc):
                        self.peaks[proc.pid] = max(proc.memory_info().rss, self.peaks.get(proc.pid, 0))
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                pass

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            self._sample()

    def __enter__(self) -> "TreeSampler":
        self._started = False
        self._sample()  # processes already running: count only what they use from now on
        self._started = True
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    @property
    def cpu_seconds(self) -> float:
        return sum(self.cpu[pid] - self.start.get(pid, 0.0) for pid in self.cpu)


PLAIN_CPU = {}


def cpu_info(benchmark, sampler: TreeSampler, frames: int, plain: bool = False) -> None:
    cpu = sampler.cpu_seconds
    benchmark.extra_info.update(cpu_s=round(cpu, 1), cpu_ms_per_frame=round(1000 * cpu / frames, 1))
    if plain:
        PLAIN_CPU["s"] = cpu
    elif PLAIN_CPU.get("s"):
        benchmark.extra_info["cpu_vs_plain"] = round(cpu / PLAIN_CPU["s"], 2)


def fps_info(benchmark, frames: int, summary=None) -> None:
    load_info(benchmark)
    stats = benchmark.stats.stats if benchmark.stats else None
    if stats is not None and stats.median:
        benchmark.extra_info["fps"] = round(frames / stats.median, 2)
        if summary is not None:
            benchmark.extra_info["fps_steady"] = round(summary.fps, 2)
            benchmark.extra_info["startup_s"] = round(stats.median - summary.seconds, 1)


def plain_run(engine, videos, out: Path) -> None:
    for i, video in enumerate(videos):
        assert main(["run", str(video), "--model", str(engine), "--threads", "2", "--out", str(out / f"{i}.mp4"),
                     "--json", str(out / f"{i}.jsonl"), "--quiet"]) == 0


def test_plain_run(benchmark, engine, videos, tmp_path):
    samplers = []

    def run():
        with TreeSampler() as sampler:
            plain_run(engine, videos, tmp_path / f"r{len(samplers)}")
        samplers.append(sampler)

    benchmark.group = "batch throughput"
    benchmark.extra_info["baseline"] = True
    benchmark.pedantic(run, rounds=1, warmup_rounds=1)
    fps_info(benchmark, VIDEOS * FRAMES)
    cpu_info(benchmark, samplers[-1], VIDEOS * FRAMES, plain=True)


@pytest.mark.parametrize("variant", ["local", "ray_1x2", "ray_2x1"])
def test_batch(benchmark, engine, videos, tmp_path, variant):
    kwargs = {"local": {"load": LoadOptions(score_threshold=0.5, num_threads=2)}, "ray_1x2": {"ray": "", "workers": 1, "cpus_per_worker": 2.0},
              "ray_2x1": {"ray": "", "workers": 2, "cpus_per_worker": 1.0}}[variant]
    runs = []

    def run():
        with TreeSampler() as sampler:
            summary = batch(engine, videos, tmp_path / f"out{len(runs)}", **kwargs)
        assert summary.count("done") == VIDEOS
        runs.append((summary, sampler))

    benchmark.group = "batch throughput"
    benchmark.pedantic(run, rounds=1, warmup_rounds=1 if variant == "local" else 0)
    fps_info(benchmark, VIDEOS * FRAMES, runs[-1][0] if variant != "local" else None)
    cpu_info(benchmark, runs[-1][1], VIDEOS * FRAMES)


@pytest.fixture(scope="module")
def long_clips(tmp_path_factory) -> list[Path]:
    return clips(tmp_path_factory.mktemp("long"), LONG_VIDEOS, LONG_FRAMES, LONG_SIZE)


def decoded_mb(videos: int, frames: int) -> float:
    return videos * frames * LONG_SIZE[0] * LONG_SIZE[1] * 3 / 1e6


@pytest.mark.timeout(3600)
def test_plain_run_memory(benchmark, engine, long_clips, tmp_path):
    """Baseline: `maskrt run` on one long clip in its own process (its peak RSS)."""
    info = {}

    def run():
        command = [sys.executable, "-m", "maskrt.cli", "run", str(long_clips[0]), "--model", str(engine), "--threads",
                   "2", "--out", str(tmp_path / "o.mp4"), "--json", str(tmp_path / "o.jsonl"), "--quiet"]
        with TreeSampler(track=lambda proc: "maskrt.cli" in proc.cmdline()) as sampler:
            subprocess.run(command, check=True, timeout=3000)
        info.update(decoded_mb=round(decoded_mb(1, LONG_FRAMES)), peak_rss_mb=round(max(sampler.peaks.values()) / 1e6))

    benchmark.group = "batch memory"
    benchmark.extra_info["baseline"] = True
    benchmark.pedantic(run, rounds=1, warmup_rounds=0)
    benchmark.extra_info.update(info)
    load_info(benchmark)


@pytest.mark.timeout(3600)
@pytest.mark.parametrize("length", ["long", "short"])
def test_batch_memory(benchmark, engine, long_clips, tmp_path, length):
    frames = LONG_FRAMES if length == "long" else SHORT_FRAMES
    paths = long_clips if length == "long" else clips(tmp_path / "in", LONG_VIDEOS, frames, LONG_SIZE)
    info = {}

    def run():
        with TreeSampler() as sampler:
            summary = batch(engine, paths, tmp_path / "out", ray="", workers=2, cpus_per_worker=1.0)
        assert summary.count("done") == LONG_VIDEOS and sampler.peaks
        decoded = decoded_mb(LONG_VIDEOS, frames)
        info.update(decoded_mb=round(decoded), workers=len(sampler.peaks),
                    peak_worker_rss_mb=round(max(sampler.peaks.values()) / 1e6),
                    decoded_per_worker_peak=round(decoded / (sum(sampler.peaks.values()) / 1e6), 2),
                    input_mb=round(sum(p.stat().st_size for p in paths) / 1e6, 1), fps_steady=round(summary.fps, 2))

    benchmark.group = "batch memory"
    benchmark.pedantic(run, rounds=1, warmup_rounds=0)
    benchmark.extra_info.update(info)
    load_info(benchmark)
