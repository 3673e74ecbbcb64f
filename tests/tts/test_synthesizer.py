"""engine.tts.synthesizer's audio against the real espeak-ng 1.52 (espeakng_loader) through pyttsx3: no mocks.

The call's format, voices, Mandarin, settings, threads and the caller's faults. The process has one pyttsx3
engine; every Synthesizer here (one per tmp_path cache dir) shares it. The cache: ``test_synthesizer_cache``.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path

import numpy as np
import pytest

from engine.errors import RequestError
from engine.format import SAMPLE_RATE_HZ
from engine.tts import synthesizer as speech
from engine.tts.synthesizer import (
    EDGE_MARGIN_MS,
    SILENCE_THRESHOLD,
    SpeechError,
    SpeechInputError,
    Synthesizer,
    VoiceSettings,
    voice_for_text,
)

SMS = "您的短信剩余15条"  # nin de duan xin sheng yu shi wu tiao: 9 syllables
HOLD = "Please hold the line."


def rms_dbfs(samples: np.ndarray) -> float:
    return 20 * np.log10(np.sqrt(np.mean(samples.astype(np.float64) ** 2)) / 32768)


def seconds(samples: np.ndarray) -> float:
    return len(samples) / SAMPLE_RATE_HZ


def envelope(samples: np.ndarray, block: int = 80) -> np.ndarray:
    """10 ms RMS envelope."""
    n = len(samples) // block * block
    return np.sqrt((samples[:n].astype(np.float64).reshape(-1, block) ** 2).mean(axis=1))


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    ea, eb = envelope(a), envelope(b)
    n = min(len(ea), len(eb))
    return float(np.corrcoef(ea[:n], eb[:n])[0, 1])


def test_output_is_call_format_speech_trimmed_to_margins(tmp_path: Path) -> None:
    audio = Synthesizer(tmp_path).synthesize(HOLD)
    assert audio.dtype == np.int16 and audio.ndim == 1
    assert not audio.flags.writeable
    assert rms_dbfs(audio) > -30  # measured −21.5 dBFS
    assert 0.8 < seconds(audio) < 2.0  # measured 1.27 s
    loud = np.flatnonzero(np.abs(audio.astype(np.int32)) > SILENCE_THRESHOLD)
    margin = EDGE_MARGIN_MS * SAMPLE_RATE_HZ // 1000
    assert loud[0] <= margin and len(audio) - 1 - loud[-1] <= margin


def test_voice_chosen_from_text() -> None:
    assert voice_for_text(SMS, VoiceSettings()) == "sit/cmn"
    assert voice_for_text("Press 1 for sales", VoiceSettings()) == "gmw/en-us"
    assert voice_for_text("Balance: 余额", VoiceSettings()) == "sit/cmn"
    assert voice_for_text("カタカナ", VoiceSettings()) == "gmw/en-us"  # kana alone is not Mandarin
    assert voice_for_text(SMS, VoiceSettings(voice="gmw/en-us+f3")) == "gmw/en-us+f3"


def test_mandarin_is_read_as_mandarin_syllables_with_tones() -> None:
    ascii_phonemes = speech.phonemes(SMS, "sit/cmn")
    flat = re.sub(r"[',_|\s]", "", ascii_phonemes)  # drop stress marks and pause/word separators
    # espeak's cmn phonemes carry Chao tone contours (35 rising, 214 dipping, 51 falling, 11 neutral).
    expected = ["ni35n", "t@11", "tua214n", "S;i51n", "s.@51N", "jy35", "s.i.35", "wu214", "thjAu35"]
    position = 0
    for syllable in expected:  # nin de duan xin sheng yu shi wu tiao, in order: "15" is shí wǔ
        found = flat.find(syllable, position)
        assert found >= 0, f"{syllable} missing after {flat[:position]!r} in {ascii_phonemes!r}"
        position = found + len(syllable)
    assert len(re.findall(r"(?:11|35|51|55|214)", ascii_phonemes)) >= 9
    ipa = speech.phonemes(SMS, "sit/cmn", ipa=True)
    assert "tʃˈaɪniːz" not in ipa and "fˈɪftiːn" not in ipa
    # The English voice spells each Han character as "Chinese letter": that is what Mandarin must not be.
    assert "tS'aIni:z" in speech.phonemes(SMS, "gmw/en-us")


def test_mandarin_duration_fits_nine_syllables(tmp_path: Path) -> None:
    synth = Synthesizer(tmp_path)
    mandarin = synth.synthesize(SMS)  # auto → sit/cmn
    english = synth.synthesize(SMS, VoiceSettings(voice="gmw/en-us"))
    assert 1.2 < seconds(mandarin) < 4.0  # measured 2.4 s: ~0.27 s a syllable at 175 wpm
    assert seconds(english) > 1.6 * seconds(mandarin)  # "Chinese letter" ×8 + "fifteen": 5.1 s
    assert rms_dbfs(mandarin) > -30


def test_settings_change_the_key_and_the_audio(tmp_path: Path) -> None:
    synth = Synthesizer(tmp_path)
    base = VoiceSettings()
    variants = {
        "base": base,
        "quiet": VoiceSettings(volume=0.3),
        "fast": VoiceSettings(rate_wpm=300),
        "female": VoiceSettings(voice="gmw/en-us+f3"),
    }
    keys = {name: synth.cache_key(HOLD, settings) for name, settings in variants.items()}
    assert len(set(keys.values())) == len(keys)
    audio = {name: synth.synthesize(HOLD, settings) for name, settings in variants.items()}
    assert synth.misses == 4
    assert rms_dbfs(audio["base"]) - rms_dbfs(audio["quiet"]) > 6  # 30 % volume: measured −10.7 dB
    assert seconds(audio["fast"]) < 0.75 * seconds(audio["base"])  # measured 0.58 of it
    assert not np.array_equal(audio["female"], audio["base"])
    assert synth.cache_key(HOLD) != synth.cache_key(HOLD + " ")


def test_remembered_keys_are_the_keys_and_the_memo_is_bounded(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    synth = Synthesizer(tmp_path)
    fresh = Synthesizer(tmp_path / "other")
    monkeypatch.setattr(speech, "KEY_MEMO_ENTRIES", 3)
    texts = [f"Press {n}." for n in range(7)] + ["x" * (speech.KEY_MEMO_CHARS + 1)]
    for text in texts + texts:  # the second round answers from the memo (or after it was forgotten)
        for settings in (VoiceSettings(), VoiceSettings(rate_wpm=300)):
            assert synth.cache_key(text, settings) == speech.cache_key({
                "format": speech.CACHE_FORMAT_VERSION, "text": text, "voice": speech.voice_for_text(text, settings),
                "rate_wpm": settings.rate_wpm, "volume_percent": settings.volume_percent,
                "espeak": fresh.espeak_version, "pyttsx3": fresh.pyttsx3_version,
                "output_rate_hz": SAMPLE_RATE_HZ, "edge_margin_ms": speech.EDGE_MARGIN_MS,
                "silence_threshold": speech.SILENCE_THRESHOLD})
            assert len(synth._keys) <= 3
    assert all(len(text) <= speech.KEY_MEMO_CHARS for text, _ in synth._keys)


def test_eight_threads_get_their_own_audio(tmp_path: Path) -> None:
    texts = ["Press one for sales.", "Press two for support.", SMS, "Goodbye.",
             "Your balance is twelve dollars.", "请按1查询余额",
             "Please wait while we connect you.", "Thank you."]
    sequential = Synthesizer(tmp_path / "seq")
    expected = [sequential.synthesize(text) for text in texts]
    parallel = Synthesizer(tmp_path / "par")
    results: dict[int, np.ndarray] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(len(texts))

    def work(index: int) -> None:
        try:
            start.wait()
            results[index] = parallel.synthesize(texts[index])
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(texts))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors and len(results) == len(texts)
    assert parallel.misses == len(texts)
    # espeak carries pitch-flutter state between utterances, so a text's samples depend slightly on what was
    # spoken before it; each result must still be its own text: same length within 3 %, and its envelope
    # closest to its own sequential rendering.
    for index, audio in results.items():
        assert abs(len(audio) - len(expected[index])) <= 0.03 * len(expected[index])
        scores = [similarity(audio, other) for other in expected]
        assert scores[index] > 0.95 and scores[index] == max(scores), (texts[index], scores)


def test_synthesis_prints_nothing(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    synth = Synthesizer(tmp_path)
    capfd.readouterr()
    synth.synthesize("Nothing on standard output, please.")
    assert synth.misses == 1
    assert capfd.readouterr().out == ""


def test_markup_is_read_as_text() -> None:
    phonemes = speech.phonemes("<speak>hi</speak> &amp;", "gmw/en-us")
    assert phonemes.count("sp'i:k") == 2 and "'amp" in phonemes


@pytest.mark.parametrize("text", ["", "   \n\t", "a\x00b", "x" * (speech.MAX_TEXT_CHARS + 1)])
def test_unspeakable_text_is_the_callers_fault(tmp_path: Path, text: str) -> None:
    with pytest.raises(SpeechInputError) as info:
        Synthesizer(tmp_path).synthesize(text)
    assert isinstance(info.value, ValueError) and isinstance(info.value, RequestError)
    assert info.value.field == "text" and info.value.code == "108100"


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"rate_wpm": 79}, "rate_wpm"), ({"rate_wpm": 451}, "rate_wpm"), ({"rate_wpm": 175.0}, "rate_wpm"),
    ({"volume": 1.5}, "volume"), ({"volume": -0.1}, "volume"), ({"volume": float("nan")}, "volume"),
    ({"voice": ""}, "voice"),
])
def test_settings_are_validated(kwargs: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        VoiceSettings(**kwargs)


def test_unknown_voice_is_the_callers_fault(tmp_path: Path) -> None:
    with pytest.raises(SpeechInputError, match="no/such-voice") as info:
        Synthesizer(tmp_path).synthesize("Hello.", VoiceSettings(voice="no/such-voice"))
    assert info.value.field == "voice" and info.value.code == "108100"
    assert Synthesizer(tmp_path).synthesize("Hello.").size > 0  # the engine is still fine
    assert SpeechError("x").code == "108104"
