"""Make the shipped prompt files in voices/ with the engine's TTS and a generated tone, then write README.md.

Run from anywhere: ``.venv/bin/python voices/make_voices.py``. Speech comes from :func:`engine.speech.
synthesize_native` (espeak-ng 1.52 through pyttsx3, 22050 Hz, trimmed to 50 ms margins) and is resampled with
soxr. In a fresh process the same sequence of prompts gives the same samples, so the PCM and FLAC files are
reproducible; the Vorbis encoder's output differs from run to run. Every file must stay under 100 KB.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

VOICES = Path(__file__).resolve().parent
sys.path.insert(0, str(VOICES.parent))

from engine.tts.synthesizer import VoiceSettings, espeak_library, pyttsx3_version, synthesize_native  # noqa: E402

MAX_FILE_BYTES = 100_000
BEEP_RATE_HZ = 8000
BEEP_SAMPLES = 4000  # 0.5 s at 8 kHz
BEEP_FREQUENCY_HZ = 1000
BEEP_LEVEL_DBFS = -10.0  # peak; RMS is −13.0 dBFS
BEEP_RAMP_MS = 5  # raised-cosine fade in and out, against clicks


@dataclass(frozen=True)
class Prompt:
    """One file: ``text`` spoken (or ``None`` for the beep), written at ``rate_hz`` with ``channels``."""

    name: str
    text: str | None
    rate_hz: int
    channels: int
    format: str
    subtype: str
    description: str


PROMPTS = [
    Prompt("filepath", "Please listen carefully to the following options.", 16000, 1, "WAV", "PCM_16",
           "WAV, 16 kHz mono 16-bit PCM, no extension (the vendor example's placeholder path `filepath`)"),
    Prompt("welcome.wav", "Welcome!", 22050, 2, "WAV", "PCM_16", "WAV, 22050 Hz stereo 16-bit PCM"),
    Prompt("menu.flac", "请按1查询余额，按2人工服务", 16000, 1, "FLAC", "PCM_16", "FLAC, 16 kHz mono 16-bit"),
    Prompt("goodbye.ogg", "Thank you for calling. Goodbye.", 22050, 1, "OGG", "VORBIS",
           "Ogg Vorbis, 22050 Hz mono"),
    Prompt("beep.wav", None, BEEP_RATE_HZ, 1, "WAV", "ULAW",
           f"WAV, 8 kHz mono G.711 μ-law; exactly {BEEP_SAMPLES} samples"),
]


def beep() -> np.ndarray:
    """0.5 s of 1 kHz at −10 dBFS peak, 5 ms raised-cosine ramps, float in [-1, 1]."""
    t = np.arange(BEEP_SAMPLES) / BEEP_RATE_HZ
    tone = 10 ** (BEEP_LEVEL_DBFS / 20) * np.sin(2 * np.pi * BEEP_FREQUENCY_HZ * t)
    ramp = int(BEEP_RATE_HZ * BEEP_RAMP_MS / 1000)
    fade = 0.5 - 0.5 * np.cos(np.pi * np.arange(ramp) / ramp)
    tone[:ramp] *= fade
    tone[-ramp:] *= fade[::-1]
    return tone


def speech(text: str, rate_hz: int, channels: int) -> np.ndarray:
    """``text`` spoken at 175 wpm by the voice chosen from the text, as float frames ``(n, channels)``."""
    samples, native_hz = synthesize_native(text, VoiceSettings())
    audio = samples.astype(np.float32) / 32768.0
    if rate_hz != native_hz:
        audio = soxr.resample(audio, native_hz, rate_hz, quality="HQ")
    return np.repeat(audio[:, None], channels, axis=1)


def make(prompt: Prompt) -> tuple[float, int]:
    """Write one prompt file; returns (duration in seconds, size in bytes)."""
    path = VOICES / prompt.name
    audio = beep()[:, None] if prompt.text is None else speech(prompt.text, prompt.rate_hz, prompt.channels)
    sf.write(str(path), np.clip(audio, -1.0, 1.0), prompt.rate_hz,
             subtype=prompt.subtype, format=prompt.format)
    size = path.stat().st_size
    if size >= MAX_FILE_BYTES:
        raise SystemExit(f"{path}: {size} bytes, over the {MAX_FILE_BYTES} byte limit")
    info = sf.info(str(path))
    return info.frames / info.samplerate, size


def readme(rows: list[tuple[Prompt, float, int]]) -> str:
    """Return the text of ``voices/README.md`` for ``rows`` (prompt, duration in seconds, size in bytes)."""
    lines = [
        "# voices/",
        "",
        "Prompt files shipped with the engine, made by `voices/make_voices.py` (run it with "
        "`.venv/bin/python voices/make_voices.py`; it rewrites every file below and this README).",
        f"Speech: espeak-ng {espeak_library()[1]} through pyttsx3 {pyttsx3_version()} (`engine.speech`), "
        "175 words per minute, voice chosen from the text (Mandarin `sit/cmn` for Han characters, else "
        "`gmw/en-us`), leading/trailing silence trimmed to 50 ms, resampled from 22050 Hz with soxr.",
        "",
        "| file | format | duration | content |",
        "| --- | --- | --- | --- |",
    ]
    for prompt, seconds, size in rows:
        content = (f"{BEEP_FREQUENCY_HZ} Hz tone at {BEEP_LEVEL_DBFS:g} dBFS peak (-13.0 dBFS RMS), "
                   f"{BEEP_RAMP_MS} ms raised-cosine ramps, generated with numpy"
                   if prompt.text is None else f"TTS: “{prompt.text}”")
        lines.append(f"| `{prompt.name}` | {prompt.description}; {size:,} bytes | {seconds:.3f} s "
                     f"| {content} |")
    lines += [
        "",
        "Every file decodes with libsndfile (`engine.audio.load_audio`); `filepath` has no extension and is "
        "recognised by its RIFF header. The PCM and FLAC files are reproducible byte for byte by rerunning "
        "the script; the Vorbis encoder's output differs from run to run.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    """Make every prompt file, print its duration and size, and rewrite ``voices/README.md``."""
    rows = []
    for prompt in PROMPTS:
        seconds, size = make(prompt)
        rows.append((prompt, seconds, size))
        print(f"{prompt.name:12s} {seconds:6.3f} s {size:7d} bytes")
    (VOICES / "README.md").write_text(readme(rows), encoding="utf-8")


if __name__ == "__main__":
    main()
