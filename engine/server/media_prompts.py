"""Programs sent to a media worker process by reference: each prompt's audio crosses the pipe once per worker.

A :class:`~engine.core.timeline.Program` holds its orders' audio (8 kHz mono int16 arrays); the speech cache
and the voice library hand the same array to every request that plays the same text or file. The main side
(:class:`PromptSender`) gives each array a token the first time it is sent to a worker (``("prompt", token,
array)`` goes first), then sends the program as its request and the tokens. When the array is collected in
the main process the worker is told to forget it (``("forget", token)``, sent with the next message). The
worker side (:class:`PromptStore`) keeps the arrays by token and rebuilds the program. A portable call's
caller audio (a file of the voice library, shared the same way) crosses by the same tokens.
"""

from __future__ import annotations

import threading
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np

from engine.core.orders import MultOrders
from engine.core.timeline import Program

#: ``send(message)``: one message to the worker (a tuple, pickled by the channel).
Send = Callable[[tuple[Any, ...]], None]


class PromptSender:
    """The main side for one worker: which arrays it holds, by token (any thread, under :attr:`lock`)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._tokens: dict[int, tuple[int, weakref.ref[np.ndarray]]] = {}  # id(array) → (token, ref)
        self._next = 0
        self._dead: deque[int] = deque()  # tokens of arrays collected since the last message

    def _collected(self, key: int, token: int) -> None:  # weakref callback: any thread, no lock taken
        self._dead.append(token)
        self._tokens.pop(key, None)

    def encode(self, program: Program, send: Send) -> tuple[MultOrders, tuple[int, ...]]:
        """``program`` as (request, tokens); the arrays the worker lacks are sent first (lock held)."""
        return program.request, tuple(self.token(prompt, send) for prompt in program.prompts)

    def token(self, array: np.ndarray, send: Send) -> int:
        """The token of ``array`` on the worker, the array sent first if the worker lacks it (lock held)."""
        while self._dead:
            send(("forget", self._dead.popleft()))
        key = id(array)
        known = self._tokens.get(key)
        if known is None or known[1]() is not array:
            token = self._next
            self._next += 1
            ref = weakref.ref(array, lambda _ref, key=key, token=token: self._collected(key, token))
            self._tokens[key] = (token, ref)
            send(("prompt", token, array))
            known = self._tokens[key]
        return known[0]

    def held(self) -> int:
        """How many arrays the worker holds (as far as this side knows)."""
        return len(self._tokens)


class PromptStore:
    """The worker side: the arrays by token."""

    def __init__(self) -> None:
        self._arrays: dict[int, np.ndarray] = {}

    def keep(self, token: int, array: np.ndarray) -> None:
        """A new array (read-only from now on)."""
        array.setflags(write=False)
        self._arrays[token] = array

    def forget(self, token: int) -> None:
        """The main process no longer has this array."""
        self._arrays.pop(token, None)

    def array(self, token: int) -> np.ndarray:
        """The array of ``token`` (read-only)."""
        return self._arrays[token]

    def program(self, request: MultOrders, tokens: tuple[int, ...]) -> Program:
        """The program of ``request`` with the arrays of ``tokens``."""
        return Program(request, tuple(self._arrays[token] for token in tokens))

    def __len__(self) -> int:
        return len(self._arrays)
