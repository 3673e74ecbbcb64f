"""File decodes (engine.audio): what a file costs in peak memory and CPU, bounded and shared, beside the old way.

Baseline, measured in the same run: the engine's decode before issue 10 (``soundfile.read`` of the whole file,
then one ``to_call_format`` call), which had no limit and no sharing. Each measurement runs in a child
process (``python -m benchmarks.bench_decode CASE PATH``); peak memory is the peak of what Python and numpy
allocate during the decode (``tracemalloc``; libsndfile's own small buffers are not counted). Cases:

- a FLAC of 3 hours of digital silence (30 minutes with ``quick``): the engine refuses it from its header;
- a 60 s 48 kHz stereo float WAV (within the limits): decoded block-wise against the whole-file decode;
- four threads loading the same file first at once: one shared decode (``VoiceLibrary``) against four.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path

from benchmarks.common import Row

BENCH = "decode"
MIB = 1024 * 1024


def _old_decode(path: str) -> object:
    import soundfile as sf

    from engine.audio.decode import to_call_format

    data, rate_hz = sf.read(path, dtype="float32", always_2d=True)
    return to_call_format(data, rate_hz)


def _four_loads(path: Path, shared: bool) -> int:
    """Four threads load ``path`` at once; the number of decodes made."""
    from engine.audio.library import VoiceLibrary

    library = VoiceLibrary(path.parent)
    start = threading.Barrier(4)
    decodes = [0]

    def load() -> None:
        start.wait()
        if shared:
            library.load(path.name)
        else:
            _old_decode(str(path))
            decodes[0] += 1

    threads = [threading.Thread(target=load) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return library.decodes if shared else decodes[0]


def _child(case: str, path: str) -> dict[str, float]:
    """(Child process.) Run ``case`` on ``path``; peak memory added (bytes), CPU and wall seconds, outcome."""
    from engine.audio.decode import DecodeLimitError, load_audio

    tracemalloc.start()
    cpu, wall = time.process_time(), time.perf_counter()
    outcome = "decoded"
    decodes = 1
    try:
        if case == "bounded":
            load_audio(path)
        elif case == "old":
            _old_decode(path)
        elif case in ("shared", "unshared"):
            decodes = _four_loads(Path(path), shared=case == "shared")
    except DecodeLimitError as exc:
        outcome = f"refused ({exc.limit})"
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return {"peak_bytes": peak, "cpu_s": cpu, "wall_s": wall, "outcome": outcome, "decodes": decodes}


def _spawn(case: str, path: Path) -> dict:
    out = subprocess.run([sys.executable, "-m", "benchmarks.bench_decode", case, str(path)], capture_output=True,
                         text=True, timeout=600, env={**os.environ, "OPENBLAS_NUM_THREADS": "1"})
    if out.returncode != 0:
        raise RuntimeError(f"{case}: {out.stderr.strip().splitlines()[-1:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _files(folder: Path, silence_s: int) -> tuple[Path, Path]:
    import soundfile as sf

    from engine.testing.media_files import noise, write_silence

    silent = write_silence(folder / "silence.flac", silence_s)
    long_wav = folder / "long.wav"
    sf.write(str(long_wav), noise(60, 48000, channels=2), 48000, subtype="FLOAT")
    return silent, long_wav


def run(quick: bool) -> list[Row]:
    """Rows: the silent FLAC, the 60 s WAV (peak memory and CPU) and the four first loads (decodes, CPU)."""
    silence_s = 1800 if quick else 3 * 3600
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="bench-decode-") as tmp:
        silent, long_wav = _files(Path(tmp), silence_s)
        label = f"{silence_s / 3600:g} h silent FLAC ({silent.stat().st_size / MIB:.2f} MiB)"
        for name, path in ((label, silent), ("60 s 48 kHz stereo WAV", long_wav)):
            new, old = _spawn("bounded", path), _spawn("old", path)
            rows.append(Row(BENCH, f"{name}: peak memory", new["peak_bytes"] / MIB, "MiB", "whole-file decode",
                            old["peak_bytes"] / MIB, note=f"{new['outcome']}; baseline {old['outcome']}"))
            rows.append(Row(BENCH, f"{name}: CPU", new["cpu_s"], "s", "whole-file decode", old["cpu_s"]))
        shared, unshared = _spawn("shared", long_wav), _spawn("unshared", long_wav)
        rows.append(Row(BENCH, "four first loads of one file: decodes", shared["decodes"], "decodes",
                        "four decodes", unshared["decodes"], target="1", met=shared["decodes"] == 1,
                        note=f"CPU {shared['cpu_s']:.2f} s against {unshared['cpu_s']:.2f} s"))
    return rows


if __name__ == "__main__":
    print(json.dumps(_child(sys.argv[1], sys.argv[2])))
