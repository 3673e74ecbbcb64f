"""Text-to-speech speed (engine.tts) and what a cache hit costs, beside the ``espeak-ng`` command.

Speed is seconds of call audio made per second of wall time, cold: every call is a miss (no memory cache, no
disk cache), so it is espeak through pyttsx3 (≥10 ms of which is the driver's loop sleep), soxr 22050→8000 Hz
and trimming. Cache hits are timed in microseconds per call: memory (the LRU) and disk (a fresh front-end
with no memory cache reading ``<key>.wav``). Baseline: ``espeak-ng -v VOICE -w out.wav TEXT`` on the same
texts, when that command is installed (a whole process per call, and whatever espeak-ng version it is).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import soundfile as sf

from benchmarks.common import Row, median_seconds
from engine.format import SAMPLE_RATE_HZ
from engine.tts.synthesizer import Synthesizer, VoiceSettings, voice_for_text

TEXTS = {
    "English": "Thank you for calling. Please listen carefully, as our menu options have changed.",
    "Mandarin": "您的短信剩余15条，请按1查询余额，按2人工服务。",
}
BENCH = "tts"


def _command_speed(text: str, workdir: Path, repeats: int) -> tuple[float | None, str]:
    """(seconds of audio per wall second of the espeak-ng command, note), or (None, why not)."""
    command = shutil.which("espeak-ng")
    if command is None:
        return None, "espeak-ng command not installed"
    out = workdir / "espeak-ng.wav"
    voice = voice_for_text(text, VoiceSettings()).split("/")[-1]
    args = [command, "-v", voice, "-s", "175", "-w", str(out), text]
    wall_s = median_seconds(lambda: subprocess.run(args, check=True, capture_output=True), repeats=repeats)
    version = subprocess.run([command, "--version"], capture_output=True, text=True).stdout
    return sf.info(str(out)).duration / wall_s, version.split("Data at")[0].strip()


def run(quick: bool) -> list[Row]:
    """Rows: cold synthesis speed per language, the command alone, and the cache-hit costs.

    Cold synthesis has the command as baseline; the cache-hit costs are those of the memory and the disk cache.
    ``quick``: fewer repeats.
    """
    repeats = 3 if quick else 9
    hits = 300 if quick else 3000
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="bench-tts-") as tmp:
        workdir = Path(tmp)
        cold = Synthesizer(workdir / "cold", memory_items=0, disk_cache=False)
        for language, text in TEXTS.items():
            audio_s = len(cold.synthesize(text)) / SAMPLE_RATE_HZ  # also initialises espeak if needed
            wall_s = median_seconds(lambda text=text: cold.synthesize(text), repeats=repeats, warmup=0)
            command_speed, command_note = _command_speed(text, workdir, repeats)
            rows.append(Row(BENCH, f"synthesis speed, {language}, cold", audio_s / wall_s, "s audio / s wall",
                            baseline="espeak-ng command", baseline_value=command_speed,
                            target="well above real time (1)", met=audio_s / wall_s > 1,
                            note=f"{audio_s:.2f} s of audio in {wall_s * 1000:.1f} ms"))
            if command_speed is not None and language == "Mandarin" and "1.51" in command_note:
                command_note += " (reads Mandarin as pinyin with tone numbers: a speed figure only)"
            rows.append(Row(BENCH, f"espeak-ng command, {language}", command_speed, "s audio / s wall",
                            note=command_note))

        warm = Synthesizer(workdir / "warm")
        text = TEXTS["English"]
        warm.synthesize(text)
        memory_us = _per_call_us(lambda: warm.synthesize(text), hits)
        rows.append(Row(BENCH, "cache hit, memory", memory_us, "µs per call",
                        target="microseconds (< 100 µs)", met=memory_us < 100,
                        note="sha256 key + LRU lookup; no espeak"))
        from_disk = Synthesizer(workdir / "warm", memory_items=0)
        disk_us = _per_call_us(lambda: from_disk.synthesize(text), max(hits // 10, 30))
        rows.append(Row(BENCH, "cache hit, disk", disk_us, "µs per call",
                        target="about a millisecond (< 2 ms)", met=disk_us < 2000,
                        note=f"{from_disk.disk_hits} reads of a WAV file; no espeak"))
    return rows


def _per_call_us(fn: object, calls: int) -> float:
    """Median over 5 batches of ``calls`` calls of ``fn()``: microseconds per call."""

    def batch() -> None:
        for _ in range(calls):
            fn()  # type: ignore[operator]

    return median_seconds(batch, repeats=5) / calls * 1e6


if __name__ == "__main__":
    start = time.perf_counter()
    for row in run(quick=True):
        print(row)
    print(f"{time.perf_counter() - start:.1f} s")
