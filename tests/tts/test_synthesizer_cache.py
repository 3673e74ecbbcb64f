"""engine.tts.synthesizer's speech cache with the real espeak-ng: one synthesis per text, on disk across processes.

Damaged files, threads asking at once, one Synthesizer per cache folder and the default folder.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from engine.tts import synthesizer as speech
from engine.tts.synthesizer import (
    SpeechError,
    Synthesizer,
)

REPO = Path(__file__).resolve().parents[2]
SMS = "您的短信剩余15条"  # nin de duan xin sheng yu shi wu tiao: 9 syllables


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


def test_singleton_per_cache_dir_and_close(tmp_path: Path) -> None:
    one = speech.synthesizer(tmp_path)
    assert speech.synthesizer(tmp_path) is one
    assert one.espeak_version.startswith("1.5")
    one.close()
    with pytest.raises(SpeechError, match="closed"):
        one.synthesize("Hello.")
    assert speech.synthesizer(tmp_path) is not one


def test_default_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("IPCC_CACHE_DIR", str(tmp_path / "a"))
    assert speech.default_cache_dir() == tmp_path / "a"
    monkeypatch.delenv("IPCC_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert speech.default_cache_dir() == tmp_path / "xdg" / "ipcc-engine"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert speech.default_cache_dir() == tmp_path / "home" / ".cache" / "ipcc-engine"
