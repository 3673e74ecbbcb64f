"""The voice library: paths kept inside the root, decodes shared per file version, a cache bounded in bytes."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from engine.audio.library import REFUSAL_BYTES, VoiceLibrary
from engine.errors import BAD_REQUEST, MediaError
from engine.testing.media_files import noise, write_silence

FIELD = "orders[0].voiceStr"
WAIT_S = 30.0  # a generous bound on waiting for other threads


def write_tone(path: Path, seconds: float, rate_hz: int = 16000, seed: int = 1) -> Path:
    sf.write(str(path), noise(seconds, rate_hz, seed=seed), rate_hz, subtype="PCM_16")
    return path


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "voices"
    (folder / "sub").mkdir(parents=True)
    write_tone(folder / "a.wav", 1.0, seed=1)
    write_tone(folder / "b.wav", 1.0, seed=2)
    write_tone(folder / "c.wav", 1.0, seed=3)
    write_tone(folder / "sub" / "d.wav", 0.5, seed=4)
    write_tone(tmp_path / "secret.wav", 0.5, seed=5)  # outside the library
    (tmp_path / "outside").mkdir()
    write_tone(tmp_path / "outside" / "e.wav", 0.5, seed=6)
    return folder


def refusal(library: VoiceLibrary, relative: str) -> str:
    with pytest.raises(MediaError) as caught:
        library.load(relative, FIELD)
    assert caught.value.code == BAD_REQUEST and caught.value.field == FIELD
    message = str(caught.value)
    assert message.startswith(f"{FIELD}: ") and str(library.root.parent) not in message  # no absolute path
    return message


def test_a_symlink_in_the_voice_library_that_points_outside_it_is_refused(root: Path) -> None:
    (root / "evil.wav").symlink_to(root.parent / "secret.wav")
    (root / "away").symlink_to(root.parent / "outside", target_is_directory=True)
    library = VoiceLibrary(root)
    assert "'evil.wav' is a link that points outside the voice library" in refusal(library, "evil.wav")
    assert "points outside" in refusal(library, "away/e.wav")
    assert library.decodes == 0


def test_a_symlink_inside_the_library_to_a_file_inside_it_is_followed(root: Path) -> None:
    (root / "alias.wav").symlink_to("sub/d.wav")
    library = VoiceLibrary(root)
    assert library.load("alias.wav") is library.load("sub/d.wav")  # one version: one decode, one array
    assert library.decodes == 1 and len(library.load("alias.wav")) == 4000


def test_a_link_swapped_in_after_the_check_is_not_followed(root: Path) -> None:
    class Racing(VoiceLibrary):
        """The attacker's move between the check and the open: ``sub`` becomes a link to a folder outside."""

        def resolve(self, relative: str, field: str = "voiceStr") -> Path:
            path = super().resolve(relative, field)
            (root / "sub").rename(root / "sub-old")
            (root / "sub").symlink_to(root.parent / "outside", target_is_directory=True)
            os.replace(root.parent / "outside" / "e.wav", root.parent / "outside" / "d.wav")
            return path

    message = refusal(Racing(root), "sub/d.wav")
    assert "cannot be opened inside the voice library" in message


@pytest.mark.parametrize(("relative", "why"), [("/etc/passwd", "is absolute"), ("../secret.wav", "contains '..'"),
                                               ("sub/../../secret.wav", "contains '..'"),
                                               ("sub/../a.wav", "contains '..'"), ("nope.wav", "does not exist"),
                                               ("sub", "does not exist"), ("a\x00.wav", "NUL")])
def test_paths_outside_or_absent_are_refused_naming_the_field(root: Path, relative: str, why: str) -> None:
    assert why in refusal(VoiceLibrary(root), relative)


def test_a_loop_of_links_is_refused(root: Path) -> None:
    (root / "loop1.wav").symlink_to("loop2.wav")
    (root / "loop2.wav").symlink_to("loop1.wav")
    assert "a loop of links" in refusal(VoiceLibrary(root), "loop1.wav")


def test_a_fifo_in_the_library_is_refused_without_hanging(root: Path) -> None:
    os.mkfifo(root / "pipe.wav")
    assert "does not exist" in refusal(VoiceLibrary(root), "pipe.wav")


def test_a_long_path_is_cut_in_the_message(root: Path) -> None:
    message = refusal(VoiceLibrary(root), "x" * 900 + ".wav")
    assert len(message) < 200 and "…" in message


def test_a_three_hour_flac_is_refused_with_the_field_and_the_limit(root: Path) -> None:
    write_silence(root / "silence.flac", 3 * 3600)
    library = VoiceLibrary(root)
    message = refusal(library, "silence.flac")
    assert message == (f"{FIELD}: 'silence.flac' lasts 10800.0 s by its header: over the limit "
                       "max_file_seconds = 600 s")
    assert "max_file_seconds" in refusal(library, "silence.flac")
    assert library.decodes == 1 and library.held_bytes == REFUSAL_BYTES  # a refusal is a cached version too


def test_the_limits_are_constructor_arguments(root: Path) -> None:
    limited = VoiceLibrary(root, max_file_seconds=0.5)
    assert "over the limit max_file_seconds = 0.5 s" in refusal(limited, "a.wav")
    assert len(limited.load("sub/d.wav")) == 4000
    assert "max_file_bytes = 1000 bytes" in refusal(VoiceLibrary(root, max_file_bytes=1000), "a.wav")
    for bad in ({"max_file_seconds": -1}, {"max_file_bytes": 0}, {"cache_bytes": -1}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            VoiceLibrary(root, **bad)


class CountingLibrary(VoiceLibrary):
    """A library whose decodes are counted and, when ``gate`` is set, wait until ``waiters`` loads wait for them."""

    def __init__(self, root: Path, waiters: int = 0, **kw: int) -> None:
        super().__init__(root, **kw)
        self.started = 0
        self.waiters = waiters
        self.gate_timed_out = False

    def _decode(self, fd: int) -> np.ndarray | str:
        self.started += 1
        if self.waiters:
            deadline = threading.Event()
            for _ in range(int(WAIT_S * 1000)):  # until the other loads are waiting on this decode
                if self.waits >= self.waiters:
                    break
                deadline.wait(0.001)
            else:
                self.gate_timed_out = True
        return super()._decode(fd)


def test_four_first_loads_decode_once(root: Path) -> None:
    write_tone(root / "long.flac", 30.0, rate_hz=44100)
    library = CountingLibrary(root, waiters=3)
    start = threading.Barrier(4)
    results: list[np.ndarray] = []
    errors: list[BaseException] = []

    def load() -> None:
        start.wait(WAIT_S)
        try:
            results.append(library.load("long.flac"))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=load) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT_S * 2)
    assert not errors and not library.gate_timed_out
    assert library.started == 1 and library.decodes == 1 and library.waits == 3
    assert len(results) == 4 and all(r is results[0] for r in results) and len(results[0]) == 30 * 8000
    assert not results[0].flags.writeable


def test_loads_waiting_for_a_refused_decode_are_refused_too(root: Path) -> None:
    write_silence(root / "silence.flac", 3 * 3600)
    library = CountingLibrary(root, waiters=2)
    messages: list[str] = []

    def load() -> None:
        try:
            library.load("silence.flac", FIELD)
        except MediaError as exc:
            messages.append(str(exc))

    threads = [threading.Thread(target=load) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT_S * 2)
    assert library.started == 1 and len(messages) == 3 and len(set(messages)) == 1
    assert "max_file_seconds" in messages[0]


def test_a_file_changed_on_disk_is_decoded_again(root: Path) -> None:
    library = CountingLibrary(root)
    first = library.load("a.wav")
    assert library.load("a.wav") is first and library.started == 1 and library.hits == 1
    write_tone(root / "a.wav", 2.0, seed=9)  # a new version: other size, other content
    second = library.load("a.wav")
    assert library.started == 2 and len(second) == 16000 and len(first) == 8000
    assert library.held_bytes == second.nbytes  # the old version's entry is gone


def test_the_cache_is_bounded_in_bytes_least_recently_used_out(root: Path) -> None:
    one_second = 8000 * 2
    library = CountingLibrary(root, cache_bytes=int(2.5 * one_second))
    a = library.load("a.wav")
    library.load("b.wav")
    assert library.load("a.wav") is a  # a is now the most recently used
    library.load("c.wav")  # 3 s of audio do not fit in 2.5 s: b, the least recently used, goes
    assert library.held_bytes == 2 * one_second <= library.cache_bytes
    assert library.started == 3
    assert library.load("a.wav") is a and library.started == 3
    library.load("b.wav")
    assert library.started == 4
    assert library.stats() == {"decodes": 4, "hits": 2, "waits": 0, "entries": 2, "held_bytes": 2 * one_second,
                               "cache_bytes": int(2.5 * one_second)}


def test_a_file_larger_than_the_cache_is_served_but_not_kept(root: Path) -> None:
    library = CountingLibrary(root, cache_bytes=1000)
    assert len(library.load("a.wav")) == 8000 and len(library.load("a.wav")) == 8000
    assert library.started == 2 and library.held_bytes == 0
