"""Harness of the guard's tests: endpoints that load or stall the media thread, a speaker that holds, raw sockets.

* ``called: "burn:MS"``: a call whose sink burns ``MS`` milliseconds of the media thread's CPU every frame (real
  work on the real thread: the loop genuinely falls behind).
* ``called: "block:NAME"``: a call whose sink blocks the media thread until :func:`release` ``NAME`` (bounded
  by 60 s so that a failed test cannot hang the run).

:func:`register_test_endpoints` adds both schemes.
"""

from __future__ import annotations

import socket
import threading
import time

import numpy as np

from engine.audio.caller import CallerAudio
from engine.format import SAMPLE_DTYPE
from engine.server.endpoints import Endpoint, EndpointContext, OutCallSpec, register_endpoint
from engine.testing.server import FakeSpeaker

BLOCK_BOUND_S = 60.0
_gates: dict[str, threading.Event] = {}
_gates_lock = threading.Lock()


def _gate(name: str) -> threading.Event:
    with _gates_lock:
        return _gates.setdefault(name, threading.Event())


def release(name: str) -> None:
    """Let every ``block:NAME`` call (and ``hold:NAME`` speech) go on."""
    _gate(name).set()


class BurnSink:
    """Spends ``burn_ms`` of the calling thread's CPU time on every frame."""

    def __init__(self, burn_ms: float) -> None:
        self.burn_ns = int(burn_ms * 1e6)

    def write(self, played: np.ndarray, heard: np.ndarray) -> None:
        """Burn CPU until the thread's clock moved by ``burn_ns``."""
        end = time.thread_time_ns() + self.burn_ns
        while time.thread_time_ns() < end:
            pass

    def close(self) -> None:
        """Nothing to close."""


class BlockSink:
    """Blocks the media thread on the first frame until :func:`release` of its name."""

    def __init__(self, name: str) -> None:
        self.gate = _gate(name)

    def write(self, played: np.ndarray, heard: np.ndarray) -> None:
        """Wait for the gate (at most :data:`BLOCK_BOUND_S`)."""
        self.gate.wait(BLOCK_BOUND_S)

    def close(self) -> None:
        """Nothing to close."""


def _silent() -> CallerAudio:
    return CallerAudio(np.zeros(0, dtype=SAMPLE_DTYPE))


def _burn(rest: str, spec: OutCallSpec, context: EndpointContext) -> Endpoint:
    return Endpoint(_silent(), BurnSink(float(rest or "30")), f"burn:{rest}")


def _block(rest: str, spec: OutCallSpec, context: EndpointContext) -> Endpoint:
    return Endpoint(_silent(), BlockSink(rest), f"block:{rest}")


def register_test_endpoints() -> None:
    """Make ``burn:MS`` and ``block:NAME`` endpoints available to ``outCall``."""
    register_endpoint("burn", _burn)
    register_endpoint("block", _block)


class HoldingSpeaker(FakeSpeaker):
    """:class:`FakeSpeaker` whose ``"hold:NAME"`` text waits for :func:`release` ``NAME`` (then a 0.5 s tone)."""

    def __init__(self) -> None:
        self.holding = 0
        self._lock = threading.Lock()

    def synthesize(self, text: str, settings: object = None) -> np.ndarray:
        """As :class:`FakeSpeaker`, holding first on ``hold:`` texts."""
        if text.startswith("hold:"):
            with self._lock:
                self.holding += 1
            try:
                _gate(text.removeprefix("hold:")).wait(BLOCK_BOUND_S)
            finally:
                with self._lock:
                    self.holding -= 1
            text = "tone:0.5"
        return super().synthesize(text, settings)


def closed_by_peer(sock: socket.socket, timeout_s: float) -> bool:
    """True when the peer closes ``sock`` within ``timeout_s`` (what it sends meanwhile is read and dropped)."""
    deadline = time.monotonic() + timeout_s
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            if not sock.recv(4096):
                return True
        except TimeoutError:
            return False
        except ConnectionError:
            return True
    return False
