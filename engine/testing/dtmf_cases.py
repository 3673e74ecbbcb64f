"""DTMF test material: random test signals, the Q.24 rule runner, talk-off speech and music.

Random cases: random key, start phases and an onset anywhere relative to the detector's 5 ms block grid
(fixed seeds). Noise SNR is the two tones' total power over white noise power in the full 0–4000 Hz band.
"""

from __future__ import annotations

import numpy as np

from engine.dtmf.detector import detect_keys
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


def run_rule(seed: int, expect_key: bool, snr_db: float | None = None, **kw: float) -> list[str]:
    """Decode CASES random single tones; return the failures (empty when the rule holds)."""
    rng = np.random.default_rng(seed)
    failures = []
    for i in range(CASES):
        key = KEYS[int(rng.integers(16))]
        x, _ = make_case(rng, random_tone(rng, key, **kw), snr_db)
        got = decoded(x)
        if got != (key if expect_key else ""):
            failures.append(f"case {i}: key {key!r} decoded {got!r}")
    return failures



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

