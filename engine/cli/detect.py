"""``ipcc-engine detect``: the DTMF keys in recordings, one file or thousands (in parallel over the cores).

Short files (up to :data:`BATCH_MAX_SECONDS`) are decoded many at once (:func:`engine.dtmf.batch.detect_keys_many`),
longer ones streamed in chunks of :data:`CHUNK_SAMPLES` (8 kHz files; other rates are read whole and resampled as
every other command does). Work goes to ``-j`` spawned processes in :data:`FILES_PER_TASK` files at a time, unless
it is small (:data:`POOL_MIN_BYTES` of files in all), when the process that reads the arguments does it alone.
Output follows the order of the files, as each is done.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from engine.cli.console import EXIT_OK, fail, print_json

if TYPE_CHECKING:
    import numpy as np
    import soundfile as sf

    from engine.dtmf.event import KeyEvent

#: Files up to this long (seconds of the call's audio) are read whole and decoded in batches.
BATCH_MAX_SECONDS = 60.0
#: Longer 8 kHz files are read and decoded this many samples at a time (bounded memory).
CHUNK_SAMPLES = 1 << 16
#: Files handed to a worker process at a time.
FILES_PER_TASK = 64
#: Below this many bytes of files in all, no worker process is started (its start-up would cost more).
POOL_MIN_BYTES = 32 << 20
#: A progress bar (on a terminal) from this many files on.
PROGRESS_MIN_FILES = 20
#: Subtypes libsndfile reads to int16 exactly as the float path would round them.
EXACT_INT16 = frozenset({"PCM_16", "PCM_S8", "PCM_U8", "ULAW", "ALAW"})
#: File name endings ``--recursive`` picks up (the formats libsndfile reads), lower case.
AUDIO_SUFFIXES = frozenset({".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".au", ".snd", ".aif",
                            ".aiff", ".aifc", ".caf", ".w64", ".rf64", ".voc", ".sph", ".nist"})

DESCRIPTION = """\
Print the DTMF keys in recordings (any format and rate libsndfile reads; resampled to 8 kHz).

One FILE: one line with its keys (empty when there are none); --json: a JSON list of {"key", "start"} (seconds).
Several files or --recursive: one line per file, FILE<TAB>KEYS, or FILE<TAB>error: REASON for a file that cannot
be decoded (then the exit status is 2, after every file); --json: one JSON object per file, {"file", "keys": [{"key",
"start" (s), "level" (dBm0, the stronger tone), "twist" (dB, low - high)}]} or {"file", "error"}."""
EPILOG = """\
examples:
  ipcc-engine detect call.wav
  ipcc-engine detect --recursive recordings/ -j 2 --json > keys.jsonl"""


@dataclass(frozen=True)
class FileKeys:
    """One file's result: its keys or why it could not be decoded (``error``, without the file's name)."""

    path: str
    events: tuple[KeyEvent, ...] = ()
    error: str = ""


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
    paths = [str(p) for p in args.input]
    for root in args.recursive:
        if not root.is_dir():
            return fail(f"--recursive {root}: not a directory")
        paths += audio_files(root)
    if not paths:
        return fail("no file given (FILE... or --recursive DIR)")
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
    else:
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
    tasks = [paths[i:i + FILES_PER_TASK] for i in range(0, len(paths), FILES_PER_TASK)]
    if jobs == 1 or len(tasks) == 1 or _total_bytes(paths) < POOL_MIN_BYTES:
        for task in tasks:
            yield from decode_task(task, channel)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(min(jobs, len(tasks)), mp_context=multiprocessing.get_context("spawn")) as pool:
        for results in pool.map(decode_task, tasks, [channel] * len(tasks)):
            yield from results


def _total_bytes(paths: list[str]) -> int:
    total = 0
    for path in paths:
        try:
            total += os.stat(path).st_size
        except OSError:
            pass  # reported when decoded
        if total >= POOL_MIN_BYTES:
            break
    return total


def decode_task(paths: list[str], channel: int) -> list[FileKeys]:
    """The keys of ``paths`` (a worker's task): short files in batches, long ones streamed."""
    from engine.dtmf.batch import detect_keys_many

    results: list[FileKeys | None] = [None] * len(paths)
    short: list[tuple[int, np.ndarray]] = []
    for i, path in enumerate(paths):
        try:
            samples = _read_short(path, channel)
            if samples is None:
                results[i] = FileKeys(path, tuple(_stream_keys(path, channel)))
            else:
                short.append((i, samples))
        except _UndecodableError as exc:
            results[i] = FileKeys(path, error=str(exc))
    for (i, _), events in zip(short, detect_keys_many([s for _, s in short]), strict=True):
        results[i] = FileKeys(paths[i], tuple(events))
    return results  # type: ignore[return-value]


class _UndecodableError(Exception):
    """A file that is not decodable audio (the message names no path)."""


def _read_short(path: str, channel: int) -> np.ndarray | None:
    """The call's-format samples of a short file, or None when it is longer than :data:`BATCH_MAX_SECONDS`."""
    import soundfile as sf

    from engine.format import SAMPLE_RATE_HZ

    try:
        with sf.SoundFile(path) as f:
            _check(f, channel)
            if f.frames > BATCH_MAX_SECONDS * f.samplerate:
                return None
            if f.samplerate == SAMPLE_RATE_HZ and f.subtype in EXACT_INT16:
                return f.read(dtype="int16", always_2d=True)[:, channel].copy()
            data = f.read(dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, OSError) as exc:
        raise _UndecodableError(f"not decodable audio ({exc})") from exc
    from engine.audio.decode import to_call_format

    return to_call_format(data, f.samplerate, channel)


def _check(f: sf.SoundFile, channel: int) -> None:
    if f.frames == 0:
        raise _UndecodableError("the file holds no audio")
    if not 0 <= channel < f.channels:
        raise _UndecodableError(f"channel {channel} does not exist (the audio has {f.channels})")


def _stream_keys(path: str, channel: int) -> list[KeyEvent]:
    """The keys of a long file, fed to one detector :data:`CHUNK_SAMPLES` at a time (8 kHz; else read whole)."""
    import numpy as np
    import soundfile as sf

    from engine.dtmf.batch import FLUSH_SAMPLES
    from engine.dtmf.detector import DtmfDetector
    from engine.dtmf.event import clamped
    from engine.format import SAMPLE_RATE_HZ

    det, events, n = DtmfDetector(), [], 0
    try:
        with sf.SoundFile(path) as f:
            exact = f.samplerate == SAMPLE_RATE_HZ and f.subtype in EXACT_INT16
            if exact:
                for block in f.blocks(CHUNK_SAMPLES, dtype="int16", always_2d=True):
                    events += det.process(np.ascontiguousarray(block[:, channel]))
                    n += len(block)
            else:
                from engine.audio.decode import to_call_format

                samples = to_call_format(f.read(dtype="float32", always_2d=True), f.samplerate, channel)
                events += det.process(samples)
                n = len(samples)
    except (sf.LibsndfileError, RuntimeError, TypeError, OSError) as exc:
        raise _UndecodableError(f"not decodable audio ({exc})") from exc
    events += det.process(np.zeros(FLUSH_SAMPLES, dtype=np.int16))
    return clamped(events, n)
