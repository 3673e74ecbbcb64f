"""DTMF test material: random test signals, the Q.24 rule runner, talk-off speech and music.

Random cases: every key, random start phases and an onset anywhere relative to the detector's 5 ms block grid
(fixed seeds), decoded many at once by a batched detector. Noise SNR is the two tones' total power over white
noise power in the full 0–4000 Hz band.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import soundfile as sf

from engine.dtmf.analysis import SUB_SAMPLES, WINDOW_SAMPLES
from engine.dtmf.channel import detect_keys
from engine.dtmf.detector import BatchDtmfDetector
from engine.dtmf.tones import KEYS, dtmf_tone
from engine.format import SAMPLE_RATE_HZ, to_int16

CASES = 32


def random_tone(rng: np.random.Generator, key: str, tone_ms: float, **kw: float) -> np.ndarray:
    """``key`` for ``tone_ms`` with random start phases; ``kw``: more :func:`dtmf_tone` arguments."""
    return dtmf_tone(key, tone_ms, low_phase=rng.uniform(0, 2 * np.pi), high_phase=rng.uniform(0, 2 * np.pi),
                     **kw)


def make_case(rng: np.random.Generator, tone: np.ndarray, snr_db: float | None = None) -> tuple[np.ndarray, int]:
    """``tone`` after a random lead-in of 30–90 ms, with 60 ms after; white noise at ``snr_db`` if given."""
    onset = int(rng.integers(240, 720))
    x = np.concatenate([np.zeros(onset), tone, np.zeros(480)])
    if snr_db is not None:
        x = x + rng.normal(0.0, np.sqrt(np.mean(tone**2) / 10 ** (snr_db / 10)), len(x))
    return to_int16(x), onset


def decoded(x: np.ndarray) -> str:
    """The keys :func:`detect_keys` finds in ``x``, as a string."""
    return "".join(ev.key for ev in detect_keys(x))


def decoded_rows(rows: np.ndarray, chunk_rows: int = 2048) -> list[str]:
    """The keys found in each row of ``rows`` (cases, n) int16, by one batched detector per ``chunk_rows`` rows.

    The rows are fed whole, then flushed with silence as :func:`detect_keys` does; a batched detector's events equal
    a single one's (tested in ``tests/dtmf``), so this is :func:`decoded` of each row, for many rows at once.
    """
    found = [""] * len(rows)
    for first in range(0, len(rows), chunk_rows):
        part = rows[first:first + chunk_rows]
        det = BatchDtmfDetector(len(part))
        events = det.process(part) + det.process(np.zeros((len(part), WINDOW_SAMPLES + SUB_SAMPLES), np.int16))
        for row, ev in events:
            found[first + row] += ev.key
    return found


def g711_round_trip(x: np.ndarray, codec: str) -> np.ndarray:
    """``x`` (int16, any shape) through a G.711 WAV (``codec``: ``"ulaw"`` or ``"alaw"``; ``"pcm16"``: unchanged)."""
    if codec == "pcm16":
        return x
    buf = io.BytesIO()
    sf.write(buf, x.reshape(-1), SAMPLE_RATE_HZ, subtype={"ulaw": "ULAW", "alaw": "ALAW"}[codec], format="WAV")
    buf.seek(0)
    y, _ = sf.read(buf, dtype="int16")
    return y.reshape(x.shape)


def key_cases(seed: int, tone_ms: float, levels_dbm0: tuple[float, float] = (-10.0, -10.0), snr_db: float | None = None,
              per_key: int = CASES, **kw: float) -> tuple[np.ndarray, list[str]]:
    """``per_key`` random cases of every key: (rows (16·per_key, n) int16, the key of each row).

    Each case is :func:`make_case` of a :func:`random_tone` (random phases, onset 30–90 ms), padded with silence to a
    common length; its level (of the stronger tone) is spread evenly over ``levels_dbm0`` (both ends included) across
    each key's cases, in random order; ``kw``: more :func:`dtmf_tone` arguments (``twist_db``, ``freq_offset``, ...).
    """
    rng = np.random.default_rng(seed)
    levels = np.linspace(*levels_dbm0, per_key)
    cases, keys = [], []
    for key in KEYS:
        for level in rng.permutation(levels):
            cases.append(make_case(rng, random_tone(rng, key, tone_ms, level_dbm0=float(level), **kw), snr_db)[0])
            keys.append(key)
    n = max(len(c) for c in cases)
    return np.stack([np.pad(c, (0, n - len(c))) for c in cases]), keys


def rule_failures(seed: int, expect_key: bool, codec: str = "pcm16", **kw: float) -> list[str]:
    """Decode :func:`key_cases` (after ``codec``); return the failures (empty when the rule holds).

    ``kw``: :func:`key_cases` arguments (``tone_ms`` required).
    """
    rows, keys = key_cases(seed, **kw)  # type: ignore[arg-type]
    got = decoded_rows(g711_round_trip(rows, codec))
    return [f"case {i}: key {key!r} decoded {g!r}" for i, (key, g) in enumerate(zip(keys, got, strict=True))
            if g != (key if expect_key else "")]


def run_rule(seed: int, expect_key: bool, snr_db: float | None = None, **kw: float) -> list[str]:
    """:func:`rule_failures` at −10 dBm0 unless ``level_dbm0`` is given (32 random cases of each of the 16 keys)."""
    level = kw.pop("level_dbm0", -10.0)
    return rule_failures(seed, expect_key, levels_dbm0=(level, level), snr_db=snr_db, **kw)  # type: ignore[arg-type]


# --- talk-off material ----------------------------------------------------------------------------------

EN = ["Thank you for calling customer service. Please listen carefully, as our menu options have changed.",
      "For billing questions, press one. For technical support, press two. To speak with an operator, stay on "
      "the line.", "Your call is important to us. The estimated waiting time is approximately seven minutes.",
      "She sells sea shells by the sea shore, and the shells she sells are surely sea shells.",
      "Hello? Hello? Can you hear me? I would like to check the status of my order, number four five six.",
      "Ooh, aah, eee! Whistling and singing voices hold long, steady, almost pure tones."]
ZH = ["感谢您的来电，我们的客服人员将尽快为您服务。", "请按一查询账户余额，按二办理业务，按零转人工服务。",
      "今天天气很好，我们一起去公园散步吧。", "您的电话对我们非常重要，请不要挂机，谢谢。",
      "欢迎致电中国移动，普通话服务请按一，英语服务请按二。"]
VOICES = [("gmw/en-us", EN), ("gmw/en-gb-x-rp", EN), ("gmw/en-us+f3", EN), ("gmw/en-gb-x-rp+f4", EN),
          ("sit/cmn", ZH), ("sit/cmn+f3", ZH), ("sit/cmn+f4", ZH)]
#: Beyond the engine's two languages: other languages, and voice variants far from plain speech.
BEYOND = [("gmw/de", "Guten Tag. Bitte wählen Sie eine der folgenden Optionen, oder bleiben Sie am Apparat."),
          ("roa/fr", "Bonjour, toutes nos lignes sont occupées. Veuillez patienter, nous allons vous répondre."),
          ("roa/es", "Hola, gracias por llamar. Marque uno para ventas, dos para soporte técnico."),
          ("sit/yue", "你好，多謝你嘅來電，請按一字查詢戶口結餘。"),
          ("jpx/ja", "お電話ありがとうございます。ご用件の番号を押してください。"),
          ("inc/hi", "नमस्ते, हमारी सेवा में आपका स्वागत है। कृपया लाइन पर बने रहें।"),
          ("zle/ru", "Здравствуйте! Все операторы заняты, пожалуйста, оставайтесь на линии."),
          ("sem/ar", "مرحبا بكم، جميع الموظفين مشغولون حاليا، يرجى الانتظار."),
          ("gmw/en-us+whisper", EN[0]), ("gmw/en-us+croak", EN[1]), ("gmw/en-us+klatt", EN[2]),
          ("sit/cmn+m7", ZH[0])]



def note(rng: np.random.Generator, f_hz: float, seconds: float, harmonics: tuple[float, ...],
         vibrato: float = 0.0, decay: float = 2.0) -> np.ndarray:
    """A note at ``f_hz`` with ``harmonics`` (amplitudes), ``vibrato`` (relative depth, 5.5 Hz), decaying."""
    t = np.arange(int(seconds * SAMPLE_RATE_HZ)) / SAMPLE_RATE_HZ
    phase = 2 * np.pi * f_hz * (t + vibrato / (2 * np.pi * 5.5) * np.sin(2 * np.pi * 5.5 * t))
    env = np.exp(-decay * t) * np.minimum(1.0, t / 0.01)
    return env * sum(a * np.sin(k * phase + rng.uniform(0, 6.3))
                     for k, a in enumerate(harmonics, 1) if k * f_hz < 3900)



# --- recordings on disk (``detect`` over many files) -------------------------------------------------------------

def recording(rng: np.random.Generator, seconds: float, keys: str, level_dbm0: float = -12.0,
              twist_db: float = 0.0) -> tuple[np.ndarray, list[int]]:
    """``seconds`` of line noise (about −60 dBm0) with ``keys`` as 60 ms tones at random places, apart.

    Returns the int16 samples and each tone's start sample. The keys must fit: 200 ms each.
    """
    n = int(seconds * SAMPLE_RATE_HZ)
    slot = 1600  # 200 ms per key: 60 ms tone, at least 140 ms apart
    if len(keys) * slot > n:
        raise ValueError(f"{len(keys)} keys do not fit in {seconds} s")
    x = rng.normal(0.0, 10.0, n)
    starts = sorted(rng.choice(n // slot, len(keys), replace=False) * slot + rng.integers(0, slot - 480, len(keys)))
    for key, start in zip(keys, starts, strict=True):
        tone = random_tone(rng, key, 60, level_dbm0=level_dbm0, twist_db=twist_db)
        x[start:start + len(tone)] += tone
    return to_int16(x), [int(s) for s in starts]


def write_recordings(folder: Path, count: int, seconds: float, seed: int, subtype: str = "PCM_16",
                     max_keys: int = 2) -> dict[Path, str]:
    """``count`` WAV recordings of ``seconds`` (8 kHz, ``subtype``) in ``folder``; returns each file's keys.

    Each holds 0 to ``max_keys`` random keys (as many as fit, :func:`recording`); names are ``clip-00000.wav``, ....
    """
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for i in range(count):
        fit = min(max_keys, int(seconds * SAMPLE_RATE_HZ) // 1600)
        keys = "".join(rng.choice(list(KEYS), int(rng.integers(0, fit + 1))))
        samples, _ = recording(rng, seconds, keys)
        path = folder / f"clip-{i:05d}.wav"
        sf.write(path, samples, SAMPLE_RATE_HZ, subtype=subtype)
        written[path] = keys
    return written
