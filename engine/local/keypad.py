"""The interactive caller at the keyboard: keys typed in the terminal become DTMF tones.

A :class:`~engine.media.call.CallerSource` read one frame at a time by the media loop, so the keys reach the
player only through the in-band detector, as a real caller's would (the microphone caller is
:mod:`engine.local.mic`).

* :class:`Keypad`: the terminal in cbreak mode (no echo, no line buffering; Ctrl-C still interrupts), read by
  a thread. Each key 0-9 * # A-D (a-d accepted) becomes a tone of :data:`TONE_MS` at :data:`LEVEL_DBM0`
  placed at the caller's current position; a key typed while a tone still sounds follows it after
  :data:`GAP_MS`. Other keys are ignored with a notice. :meth:`Keypad.close` restores the terminal.
"""

from __future__ import annotations

import os
import select
import sys
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np

from engine.core.orders import DTMF_KEYS
from engine.dtmf.tones import dtmf_tone
from engine.format import SAMPLE_DTYPE, ms_to_samples, to_int16

#: A key press: 100 ms of tone at −8 dBm0 per tone (as the scripted caller's presses), 60 ms between presses.
TONE_MS = 100
LEVEL_DBM0 = -8.0
GAP_MS = 60

Notice = Callable[[str], None]


def print_notice(text: str) -> None:
    """Default notice: one line on standard error (over a live status line, if any)."""
    prefix = "\r\033[K" if sys.stderr.isatty() else ""
    print(f"{prefix}{text}", file=sys.stderr, flush=True)


def key_of(char: str) -> str | None:
    """The DTMF key typed as ``char`` (a-d count as A-D); None for anything else."""
    key = char.upper() if char in "abcd" else char
    return key if len(key) == 1 and key in DTMF_KEYS else None


def _split_escapes(text: str) -> list[str]:
    """``text`` cut into plain runs and escape sequences (ESC [ ... final, ESC O x, or ESC x)."""
    parts, plain, i = [], "", 0
    while i < len(text):
        if text[i] != "\x1b":
            plain += text[i]
            i += 1
            continue
        if plain:
            parts.append(plain)
            plain = ""
        end = i + 2
        if text[i + 1 : i + 2] in ("[", "O"):
            while end < len(text) and not "@" <= text[end] <= "~":
                end += 1
            end += 1
        parts.append(text[i:end])
        i = end
    if plain:
        parts.append(plain)
    return parts


class Keypad:
    """A caller whose keys come from the terminal (file descriptor ``fd``, default standard input).

    ``notice(text)`` reports ignored keys (default: a line on stderr); ``on_key(key)`` is told each key
    accepted. Use as a context manager, or call :meth:`start` and :meth:`close`. Not a TTY (a pipe, a file):
    characters are read as they come, without touching terminal settings.
    """

    def __init__(self, fd: int | None = None, notice: Notice = print_notice,
                 on_key: Callable[[str], None] | None = None) -> None:
        self.fd = sys.stdin.fileno() if fd is None else fd
        self.notice = notice
        self.on_key = on_key
        self.keys = ""  # every key accepted, in order
        self.ignored = ""  # every character ignored
        self.position_samples = 0  # samples read so far
        self._arrived: deque[str] = deque()  # accepted keys not yet placed in the audio
        self._ahead = np.zeros(0, dtype=np.int32)  # caller audio from ``position`` on (tones placed)
        self._free_at_sample = 0  # the next tone may start here (samples)
        self._saved: list[Any] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._tone = {key: to_int16(dtmf_tone(key, TONE_MS, LEVEL_DBM0)) for key in DTMF_KEYS}

    def start(self) -> Keypad:
        """Put the terminal in cbreak mode (if it is one) and start reading keys."""
        if self._thread is None:
            if os.isatty(self.fd):
                import termios
                import tty

                self._saved = termios.tcgetattr(self.fd)
                tty.setcbreak(self.fd, termios.TCSANOW)
            self._thread = threading.Thread(target=self._read_keys, name="keypad", daemon=True)
            self._thread.start()
        return self

    def close(self) -> None:
        """Stop reading and restore the terminal's settings; safe to call twice."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=1.0)
        if self._saved is not None:
            import termios

            termios.tcsetattr(self.fd, termios.TCSADRAIN, self._saved)
            self._saved = None

    def __enter__(self) -> Keypad:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def press(self, text: str) -> None:
        """Take typed characters: keys are queued for the audio, anything else is ignored with a notice."""
        for char in text:
            key = key_of(char)
            if key is None:
                self.ignored += char
                self.notice(f"ignored {char!r}: the keys are 0-9 * # A-D")
                continue
            self.keys += key
            self._arrived.append(key)
            if self.on_key is not None:
                self.on_key(key)

    def _read_keys(self) -> None:
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([self.fd], [], [], 0.1)
                data = os.read(self.fd, 64) if ready else b""
            except OSError:
                return
            if ready and not data:  # end of input (not a terminal)
                return
            for text in _split_escapes(data.decode("latin-1")):
                if text.startswith("\x1b"):  # an arrow or function key: one notice for the whole sequence
                    self.ignored += text
                    self.notice("ignored a special key: the keys are 0-9 * # A-D")
                else:
                    self.press(text)

    def read(self, count: int) -> np.ndarray:
        """The caller's next ``count`` samples: silence with the tones of the keys typed so far."""
        while self._arrived:
            self._place(self._arrived.popleft())
        ahead = self._ahead
        out = np.zeros(count, dtype=SAMPLE_DTYPE)
        taken = min(count, len(ahead))
        out[:taken] = ahead[:taken]
        self._ahead = ahead[taken:]
        self.position_samples += count
        return out

    def _place(self, key: str) -> None:
        tone = self._tone[key]
        start = max(self.position_samples, self._free_at_sample)
        offset = start - self.position_samples
        if len(self._ahead) < offset + len(tone):
            grow = np.zeros(offset + len(tone) - len(self._ahead), np.int32)
            self._ahead = np.concatenate([self._ahead, grow])
        self._ahead[offset : offset + len(tone)] += tone
        self._free_at_sample = start + len(tone) + ms_to_samples(GAP_MS)

    def request_started(self) -> None:
        """A live caller's audio runs on regardless of requests."""
