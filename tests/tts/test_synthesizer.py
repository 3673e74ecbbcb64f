"""engine.tts.synthesizer against the real espeak-ng 1.52 (espeakng_loader) through pyttsx3: no mocks.

The process has one pyttsx3 engine; every Synthesizer here (one per tmp_path cache dir) shares it.
"""

from __future__ import annotations

import ctypes.util
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from engine.errors import RequestError
from engine.format import SAMPLE_RATE_HZ
from engine.tts import espeak
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

REPO = Path(__file__).resolve().parents[2]
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


def test_same_text_twice_is_one_synthesis(tmp_path: Path) -> None:
    synth = Synthesizer(tmp_path)
    first = synth.synthesize("Your call is important to us.")
    second = synth.synthesize("Your call is important to us.")
    assert second is first
    assert (synth.misses, synth.memory_hits, synth.disk_hits) == (1, 1, 0)


def test_new_synthesizer_serves_from_disk(tmp_path: Path) -> None:
    first = Synthesizer(tmp_path).synthesize("Thank you for calling.")
    again = Synthesizer(tmp_path)
    audio = again.synthesize("Thank you for calling.")
    np.testing.assert_array_equal(audio, first)
    assert (again.misses, again.disk_hits) == (0, 1)
    assert not audio.flags.writeable


def test_warm_cache_process_never_initialises_espeak(tmp_path: Path) -> None:
    expected = Synthesizer(tmp_path).synthesize(SMS)
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from engine.tts import synthesizer as speech\n"
        f"synth = speech.Synthesizer(Path({str(tmp_path)!r}))\n"
        f"audio = synth.synthesize({SMS!r})\n"
        "print(len(audio), int(audio.astype('int64').sum()), synth.disk_hits, synth.misses,\n"
        "      speech.espeak_init_count(), 'pyttsx3' in sys.modules)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True,
                         cwd=tmp_path, timeout=60).stdout.split()
    assert out == [str(len(expected)), str(int(expected.astype(np.int64).sum())), "1", "0", "0", "False"]


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


def test_same_text_from_many_threads_is_synthesized_once(tmp_path: Path) -> None:
    synth = Synthesizer(tmp_path)
    results: list[np.ndarray] = []
    threads = [threading.Thread(target=lambda: results.append(synth.synthesize("Hold, please.")))
               for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(results) == 6 and all(r is results[0] for r in results)
    assert (synth.misses, synth.memory_hits + synth.disk_hits) == (1, 5)


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
def test_corrupt_cache_file_is_resynthesized(tmp_path: Path, damage: str) -> None:
    good = Synthesizer(tmp_path).synthesize("Menu.")
    path = tmp_path / "tts" / f"{Synthesizer(tmp_path).cache_key('Menu.')}.wav"
    data = path.read_bytes()
    path.write_bytes({"garbage": b"RIFF\x00not a wav at all" * 10, "truncated": data[: len(data) // 2],
                      "empty": b""}[damage])
    synth = Synthesizer(tmp_path)
    audio = synth.synthesize("Menu.")
    assert (synth.misses, synth.disk_hits) == (1, 0)
    assert abs(len(audio) - len(good)) <= 0.03 * len(good)
    assert Synthesizer(tmp_path).synthesize("Menu.").tolist() == audio.tolist()  # the file was rewritten


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


def test_singleton_per_cache_dir_and_close(tmp_path: Path) -> None:
    one = speech.synthesizer(tmp_path)
    assert speech.synthesizer(tmp_path) is one
    assert one.espeak_version.startswith("1.5")
    one.close()
    with pytest.raises(SpeechError, match="closed"):
        one.synthesize("Hello.")
    assert speech.synthesizer(tmp_path) is not one


def test_espeak_is_the_wheels_1_52_and_older_is_refused() -> None:
    assert espeak.espeak_library()[1].startswith("1.52")
    espeak.check_espeak_version("1.52.0")
    with pytest.raises(speech.EspeakVersionError, match=r"1\.51\.1 is too old: 1\.52 or newer") as info:
        espeak.check_espeak_version("1.51.1")
    assert info.value.code == "108104"


@pytest.mark.skipif(ctypes.util.find_library("espeak-ng") is None, reason="no system libespeak-ng")
def test_pyttsx3_loaded_first_with_another_espeak_is_refused(tmp_path: Path) -> None:
    # pyttsx3 imported before engine.tts loads whatever libespeak-ng.so.1 the system has (Debian 12: 1.51).
    script = (
        "import pyttsx3.drivers._espeak as e\n"
        "from engine.tts import synthesizer as speech\n"
        "if e.Info(None).decode() == speech.espeak_library()[1]:\n"
        "    print('same')\n"
        "else:\n"
        "    try:\n"
        f"        speech.Synthesizer({str(tmp_path)!r}).synthesize('Hello.')\n"
        "    except speech.EspeakVersionError as exc:\n"
        "        print('refused:', exc)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True,
                         cwd=tmp_path, timeout=60).stdout
    assert out == "same\n" or out.startswith("refused: pyttsx3 is using espeak-ng 1.5"), out


def test_default_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("IPCC_CACHE_DIR", str(tmp_path / "a"))
    assert speech.default_cache_dir() == tmp_path / "a"
    monkeypatch.delenv("IPCC_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert speech.default_cache_dir() == tmp_path / "xdg" / "ipcc-engine"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert speech.default_cache_dir() == tmp_path / "home" / ".cache" / "ipcc-engine"
