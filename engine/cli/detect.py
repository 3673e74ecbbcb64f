"""``ipcc-engine detect``: the DTMF keys in recordings, one file or thousands (in parallel over the cores).

Files are read and decoded by :mod:`engine.cli.recordings`. Work goes to ``-j`` spawned processes in
:data:`FILES_PER_TASK` files at a time, unless it is small (:data:`POOL_MIN_BYTES` of files in all), when the process
that reads the arguments does it alone. Processes rather than threads: the batched decision of short files is a Python
loop over windows that holds the GIL between numpy calls (``benchmarks/bench_detect.py`` compares the two). Output
follows the order of the files, as each is done.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

from engine.cli.console import EXIT_OK, fail, print_json
from engine.cli.recordings import FileKeys, decode_task

#: Files handed to a worker process at a time, at most ...
FILES_PER_TASK = 256
#: ... and bytes of files (a long recording is a task of its own).
TASK_BYTES = 4 << 20
#: Below this many bytes of files in all (about 2 h of 8 kHz 16-bit audio), no worker process is started: its
#: start-up would cost more than the work.
POOL_MIN_BYTES = 128 << 20
#: A progress bar (on a terminal) from this many files on.
PROGRESS_MIN_FILES = 20
#: File name endings ``--recursive`` picks up (the formats libsndfile reads), lower case.
AUDIO_SUFFIXES = frozenset({".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".au", ".snd", ".aif",
                            ".aiff", ".aifc", ".caf", ".w64", ".rf64", ".voc", ".sph", ".nist"})

DESCRIPTION = """\
Print the DTMF keys in recordings (any format and rate libsndfile reads; resampled to 8 kHz).

One FILE: one line with its keys (nothing when there are none); --json: a JSON list of {"key", "start"} (seconds).
Several files or --recursive: one line per file, FILE<TAB>KEYS, or FILE<TAB>error: REASON for a file that cannot
be decoded (then the exit status is 2, after every file); --json: one JSON object per file, {"file", "keys": [{"key",
"start" (s), "level" (dBm0, the stronger tone), "twist" (dB, low - high)}]} or {"file", "error"}."""
EPILOG = """\
examples:
  ipcc-engine detect call.wav
  ipcc-engine detect --recursive recordings/ -j 2 --json > keys.jsonl"""


def register(commands: argparse._SubParsersAction) -> None:
    """Add the ``detect`` sub-command."""
    detect = commands.add_parser("detect", help="print the DTMF keys in recordings", description=DESCRIPTION,
                                 epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    detect.add_argument("input", nargs="*", metavar="FILE", help="audio files")
    detect.add_argument("-r", "--recursive", action="append", default=[], metavar="DIR", type=Path,
                        help="every audio file under DIR (by name ending, sorted); may be repeated")
    detect.add_argument("--json", action="store_true", help="JSON output, with start times (and level, twist)")
    detect.add_argument("--channel", type=int, default=0, help="channel of a multi-channel file (default: 0)")
    detect.add_argument("-j", "--jobs", type=int, default=_cpu_count(),
                        help="worker processes at most (default: the CPUs usable, here %(default)s)")
    detect.add_argument("--no-progress", action="store_true", help="no progress bar on a terminal")
    detect.set_defaults(func=cmd_detect)


def _cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def cmd_detect(args: argparse.Namespace) -> int:
    """``detect FILE... | --recursive DIR``: the keys of each file; 2 when a file could not be decoded."""
    if args.jobs < 1:
        return fail(f"-j/--jobs must be at least 1, got {args.jobs}")
    if args.channel < 0:
        return fail(f"--channel must be >= 0, got {args.channel}")
    if not args.input and not args.recursive:
        return fail("no file given (FILE... or --recursive DIR)")
    paths = [str(p) for p in args.input]
    for root in args.recursive:
        if not root.is_dir():
            return fail(f"--recursive {root}: not a directory")
        paths += audio_files(root)
    if not paths:
        print("ipcc-engine: no audio file found", file=sys.stderr)
        return EXIT_OK
    if len(args.input) == 1 and not args.recursive:
        return _one_file(paths[0], args)
    failed = 0
    results = decode_files(paths, args.channel, args.jobs)
    for result in _progress(results, len(paths), enabled=not args.no_progress):
        failed += bool(result.error)
        _print_many(result, args.json)
    if failed:
        return fail(f"{failed} of {len(paths)} files could not be decoded")
    return EXIT_OK


def _one_file(path: str, args: argparse.Namespace) -> int:
    """One file: the output ``detect`` always had (one line of keys, or a JSON list of keys and start times)."""
    from engine.format import samples_to_seconds

    (result,) = decode_files([path], args.channel, jobs=1)
    if result.error:
        return fail(f"{path}: {result.error}")
    if args.json:
        print_json([{"key": e.key, "start": round(samples_to_seconds(e.start_sample), 4)} for e in result.events])
    elif result.events:  # no key: nothing at all (a script reads an empty output)
        print("".join(e.key for e in result.events), flush=True)
    return EXIT_OK


def _print_many(result: FileKeys, as_json: bool) -> None:
    from engine.format import samples_to_seconds

    if as_json:
        if result.error:
            print_json({"file": result.path, "error": result.error})
            return
        print_json({"file": result.path, "keys": [
            {"key": e.key, "start": round(samples_to_seconds(e.start_sample), 4), "level": e.level_dbm0,
             "twist": e.twist_db} for e in result.events]})
    else:
        keys = f"error: {result.error}" if result.error else "".join(e.key for e in result.events)
        print(f"{result.path}\t{keys}", flush=True)


def _progress(results: Iterable[FileKeys], total: int, enabled: bool) -> Iterable[FileKeys]:
    """``results`` under a tqdm bar on standard error, when it is a terminal and there are many files."""
    if not enabled or total < PROGRESS_MIN_FILES or not sys.stderr.isatty():
        return results
    from tqdm import tqdm

    return tqdm(results, total=total, desc="detect", unit="file", file=sys.stderr, dynamic_ncols=True)


def audio_files(root: Path) -> list[str]:
    """The audio files under ``root`` (by name ending, :data:`AUDIO_SUFFIXES`), sorted; symlinked folders skipped."""
    found = []
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        found += [os.path.join(folder, f) for f in sorted(files) if Path(f).suffix.lower() in AUDIO_SUFFIXES]
    return found


def decode_files(paths: list[str], channel: int, jobs: int) -> Iterator[FileKeys]:
    """Each file's keys, in the order of ``paths``: here, or in up to ``jobs`` spawned processes for much work."""
    sizes = [_size(p) for p in paths] if jobs > 1 and len(paths) > 1 else [0] * len(paths)
    tasks = _tasks(paths, sizes)
    if jobs == 1 or len(tasks) == 1 or sum(sizes) < POOL_MIN_BYTES:
        for task in tasks:
            yield from decode_task(task, channel)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    done = 0
    try:
        with ProcessPoolExecutor(min(jobs, len(tasks)), mp_context=multiprocessing.get_context("spawn")) as pool:
            for results in pool.map(decode_task, tasks, [channel] * len(tasks)):
                yield from results
                done += 1
    except BrokenProcessPool:  # a worker was killed (out of memory, a signal): the rest is decoded here
        print("ipcc-engine: a worker process died; decoding the remaining files in this one", file=sys.stderr)
        for task in tasks[done:]:
            yield from decode_task(task, channel)


def _tasks(paths: list[str], sizes: list[int]) -> list[list[str]]:
    """``paths`` in order, cut into tasks of at most :data:`FILES_PER_TASK` files and about :data:`TASK_BYTES`."""
    tasks: list[list[str]] = []
    task: list[str] = []
    size = 0
    for path, n in zip(paths, sizes, strict=True):
        if task and (len(task) == FILES_PER_TASK or size + n > TASK_BYTES):
            tasks.append(task)
            task, size = [], 0
        task.append(path)
        size += n
    return tasks + [task] if task else tasks


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0  # reported when decoded
