"""``ipcc-engine detect`` over many recordings: audio seconds per wall second, beside the baselines of the same run.

Material (written to a temporary folder, 8 kHz 16-bit WAV, line noise with 60 ms keys at −12 dBm0): 300 short clips
of 0.3 s (0 or 1 key each) and long recordings (8 of 20 min, 2 of 2 min with ``--quick``, a key every 2 s or so).

Rows, each as wall time of whole commands (new processes, start-up included):

* one ``detect`` command over every file, on one core (``-j 1``, the process pinned to one CPU): the issue's goal;
  baseline: one ``detect`` process per file (on a sample of the files, same rate), also on one core;
* one ``detect`` command with the default ``-j`` (every CPU); baseline: ``multimon-ng -a DTMF`` over the same audio
  as 22050 Hz raw files (the rate it needs; converted beforehand, not timed), one process for every file, when it
  is installed (``apt-get install multimon-ng``); skipped otherwise;
* start-up: ``detect`` on one 0.3 s file (median wall ms); baseline: ``python -c "import numpy, soundfile"``;
* threads against processes for ``-j``: the long recordings decoded in this process by two threads, against two
  spawned processes (pool start-up included), serial the reference.

Every command's keys are checked against the ones written; a mismatch is noted on its row.
"""

from __future__ import annotations

import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from benchmarks.common import Row

BENCH = "detect"
ROOT = Path(__file__).resolve().parent.parent
RATE = "× real time"  # seconds of audio per second of wall time
SHORT_CLIPS, SHORT_SECONDS = 300, 0.3
GOAL_X = 2000.0
STARTUP_TARGET_MS = 150.0
MULTIMON_RATE_HZ = 22050


def _command() -> list[str]:
    script = Path(sys.executable).with_name("ipcc-engine")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "engine.cli"]


def _one_core() -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})


def _timed(argv: Sequence[str], one_core: bool = False) -> tuple[float, str, float]:
    """(wall seconds, standard output, CPU seconds with its children's) of one run of ``argv``; it must succeed."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(list(argv), capture_output=True, text=True, check=True, cwd=ROOT,
                          preexec_fn=_one_core if one_core else None)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return wall, done.stdout, cpu


def _median_run(argv: Sequence[str], repeats: int, one_core: bool = False) -> tuple[float, str, float]:
    """Median wall and CPU seconds of ``repeats`` runs of ``argv``, and the first run's output."""
    runs = [_timed(argv, one_core) for _ in range(repeats)]
    return statistics.median(r[0] for r in runs), runs[0][1], statistics.median(r[2] for r in runs)


def _check_lines(out: str, truth: dict[Path, str]) -> str:
    got = dict(line.split("\t", 1) for line in out.splitlines())
    wrong = sum(got.get(str(p)) != k for p, k in truth.items())
    return "keys all correct" if not wrong else f"{wrong} of {len(truth)} files decoded wrong"


def _per_file(files: list[Path], truth: dict[Path, str], one_core: bool) -> tuple[float, str]:
    """(× real time, check) of one ``detect`` process per file."""
    start, wrong = time.perf_counter(), 0
    for path in files:
        _, out, _ = _timed([*_command(), "detect", str(path)], one_core)
        wrong += out.strip() != truth[path]
    seconds = time.perf_counter() - start
    return _audio_seconds(files) / seconds, "keys all correct" if not wrong else f"{wrong} wrong"


def _audio_seconds(files: Sequence[Path]) -> float:
    import soundfile as sf

    return sum(sf.info(str(p)).duration for p in files)


def _multimon(files: list[Path], folder: Path, truth: dict[Path, str], repeats: int) -> tuple[float | None, str]:
    """(× real time, note) of one ``multimon-ng -a DTMF`` process over ``files`` as 22050 Hz raw, or None if absent."""
    exe = shutil.which("multimon-ng")
    if exe is None:
        return None, "skipped: multimon-ng is not installed (apt-get install multimon-ng)"
    import soundfile as sf
    import soxr

    folder.mkdir()
    raws = []
    for path in files:
        x, rate = sf.read(str(path), dtype="float32")
        raw = folder / (path.stem + ".raw")
        y = soxr.resample(x, rate, MULTIMON_RATE_HZ)
        raw.write_bytes((np.clip(y, -1, 1 - 2**-15) * 32768).astype("<i2").tobytes())
        raws.append(str(raw))
    seconds, out, cpu = _median_run([exe, "-q", "-c", "-a", "DTMF", "-t", "raw", *raws], repeats)
    found = "".join(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("DTMF:"))
    want = "".join(truth[p] for p in files)
    note = "keys all correct" if found == want else f"{len(found)} keys found, {len(want)} written"
    audio = _audio_seconds(files)
    return audio / seconds, f"one process for all files, {audio / cpu:,.0f}× by CPU time; {note}"


def _parallel_ways(files: list[Path], repeats: int) -> dict[str, float]:
    """× real time of decoding ``files`` here: serial, two threads, two spawned processes; and the pool's start-up.

    The pools are warmed (one task each) before they are timed; ``"startup_ms"``: the process pool's first tasks.
    """
    import multiprocessing
    from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor

    from engine.cli.detect import decode_task

    tasks = [[str(p)] for p in files]
    audio = _audio_seconds(files)

    def timed(pool: Executor | None) -> float:
        best = []
        for _ in range(repeats + 1):  # the first is a warm-up
            start = time.perf_counter()
            if pool is None:
                [decode_task(task, 0) for task in tasks]
            else:
                list(pool.map(decode_task, tasks, [0] * len(tasks)))
            best.append(time.perf_counter() - start)
        return audio / statistics.median(best[1:])

    ways = {"serial": timed(None)}
    with ThreadPoolExecutor(2) as threads:
        ways["threads"] = timed(threads)
    start = time.perf_counter()
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as processes:
        list(processes.map(decode_task, tasks[:2], [0] * len(tasks[:2])))
        ways["startup_ms"] = (time.perf_counter() - start) * 1000
        ways["processes"] = timed(processes)
    return ways


def _in_process(files: list[Path], repeats: int) -> tuple[float, float]:
    """× real time on one core inside one process: ``detect``'s own path, and each file read then ``detect_keys``."""
    from engine.audio.decode import load_audio
    from engine.cli.detect import FILES_PER_TASK, decode_task
    from engine.dtmf.channel import detect_keys

    paths = [str(p) for p in files]
    audio = _audio_seconds(files)
    cores = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    _one_core()
    try:
        batched = [_cpu_seconds(lambda: [decode_task(paths[i:i + FILES_PER_TASK], 0)
                                         for i in range(0, len(paths), FILES_PER_TASK)]) for _ in range(repeats + 1)]
        each = [_cpu_seconds(lambda: [detect_keys(load_audio(p, 0)) for p in paths]) for _ in range(repeats + 1)]
    finally:
        if cores is not None:
            os.sched_setaffinity(0, cores)
    return audio / statistics.median(batched[1:]), audio / statistics.median(each[1:])


def _cpu_seconds(fn: Callable[[], object]) -> float:
    start = time.process_time()
    fn()
    return time.process_time() - start


def _startup(clip: Path, repeats: int) -> tuple[float, float, float]:
    """Median wall ms of ``detect`` on one clip, its CPU ms, and the wall ms of importing numpy and soundfile alone."""
    runs = [_timed([*_command(), "detect", str(clip)]) for _ in range(repeats)]
    floor = statistics.median(_timed([sys.executable, "-c", "import numpy, soundfile"])[0] for _ in range(repeats))
    return statistics.median(r[0] for r in runs) * 1000, statistics.median(r[2] for r in runs) * 1000, floor * 1000


def run(quick: bool) -> list[Row]:
    """Measure; ``quick`` keeps the module to about a minute."""
    from engine.testing.dtmf_cases import write_recordings

    repeats = 1 if quick else 3
    long_count, long_seconds = (2, 120.0) if quick else (8, 1200.0)  # full: enough for -j to start workers
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="ipcc-bench-detect-") as tmp:
        folder = Path(tmp)
        short = write_recordings(folder / "short", SHORT_CLIPS, SHORT_SECONDS, seed=1, max_keys=1)
        long = write_recordings(folder / "long", long_count, long_seconds, seed=2, max_keys=int(long_seconds / 2))
        inside, each = _in_process(sorted(short), 3 if quick else 7)
        rows.append(Row(BENCH, f"{SHORT_CLIPS} short clips ({SHORT_SECONDS:g} s) inside one detect process, one core",
                        inside, RATE, "each file read, then detect_keys (today's one-file path)", each,
                        f"≥ {GOAL_X:,.0f}×", inside >= GOAL_X,
                        note="after start-up: detect's own functions called in this process (CPU time, median)"))
        for name, truth in ((f"{SHORT_CLIPS} short clips ({SHORT_SECONDS:g} s)", short),
                            (f"{long_count} long recordings ({long_seconds / 60:g} min)", long)):
            rows += _command_rows(name, truth, folder, repeats, quick)
        ways = _parallel_ways(sorted(long), repeats)
        rows.append(Row(BENCH, "long recordings, 2 workers in one process: spawned processes", ways["processes"],
                        RATE, "2 threads", ways["threads"],
                        note=f"serial {ways['serial']:,.0f}×; warm pools; the process pool's start-up: "
                             f"{ways['startup_ms']:.0f} ms"))
        detect_ms, cpu_ms, floor_ms = _startup(sorted(short)[0], 5 if quick else 15)
        rows.append(Row(BENCH, "start-up: detect on one 0.3 s file (wall, median)", detect_ms, "ms",
                        "python -c 'import numpy, soundfile'", floor_ms, f"< {STARTUP_TARGET_MS:g} ms",
                        detect_ms < STARTUP_TARGET_MS, note=f"CPU {cpu_ms:.0f} ms"))
    return rows


def _command_rows(name: str, truth: dict[Path, str], folder: Path, repeats: int, quick: bool) -> list[Row]:
    """One ``detect`` command over the files (one core, then every CPU) beside its baselines."""
    files = sorted(truth)
    audio = _audio_seconds(files)
    root = str(files[0].parent)
    jobs = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    t_one, out, cpu_one = _median_run([*_command(), "detect", "-j", "1", "-r", root], repeats, one_core=True)
    sample = files[:: max(1, len(files) // (10 if quick else 30))]
    base, base_note = _per_file(sample, truth, one_core=True)
    rows = [Row(BENCH, f"{name}: one detect command, one core (-j 1)", audio / t_one, RATE,
                "one detect process per file, one core", base,
                note=f"{_check_lines(out, truth)}; {audio:.0f} s of audio in {t_one * 1000:.0f} ms, start-up "
                     f"included ({audio / cpu_one:,.0f}× by CPU time); per-file baseline on {len(sample)} files: "
                     f"{base_note}")]
    t_all, out, cpu_all = _median_run([*_command(), "detect", "-j", str(jobs), "-r", root], repeats)
    mm, mm_note = _multimon(files, folder / f"raw-{len(files)}", truth, repeats)
    rows.append(Row(BENCH, f"{name}: one detect command, -j {jobs}", audio / t_all, RATE,
                    f"multimon-ng -a DTMF ({MULTIMON_RATE_HZ} Hz raw)", mm,
                    note=f"{_check_lines(out, truth)}; {audio / cpu_all:,.0f}× by CPU time; multimon-ng: {mm_note}"))
    return rows


if __name__ == "__main__":
    for row in run(quick=True):
        print(row)
