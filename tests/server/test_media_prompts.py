"""Programs to media workers by reference: each prompt array crosses once per worker, forgotten when collected."""

from __future__ import annotations

import gc
import pickle
from typing import Any

import numpy as np

from engine.core.timeline import Program
from engine.server.media_prompts import PromptSender, PromptStore
from engine.wire.request import parse_mult_orders

REQUEST = parse_mult_orders({"appId": "a", "callId": "c", "orders": [
    {"playFlag": 0, "voiceStr": "one"}, {"playFlag": 0, "voiceStr": "two", "getkey": 1, "maxRevCnt": 1}]})


def _wire(store: PromptStore) -> tuple[list[tuple[Any, ...]], Any]:
    sent: list[tuple[Any, ...]] = []

    def send(message: tuple[Any, ...]) -> None:  # as the pipe does: pickled, then applied by the worker
        message = pickle.loads(pickle.dumps(message))
        sent.append(message)
        getattr(store, "keep" if message[0] == "prompt" else "forget")(*message[1:])

    return sent, send


def test_a_prompt_array_is_sent_once_and_the_worker_rebuilds_the_program_sample_for_sample() -> None:
    store, sender = PromptStore(), PromptSender()
    sent, send = _wire(store)
    shared = np.arange(800, dtype=np.int16)
    first = Program(REQUEST, (shared, np.full(160, 7, dtype=np.int16)))
    second = Program(REQUEST, (shared, shared))
    request, tokens = sender.encode(first, send)
    assert [m[0] for m in sent] == ["prompt", "prompt"] and len(set(tokens)) == 2
    rebuilt = store.program(pickle.loads(pickle.dumps(request)), tokens)
    assert all(np.array_equal(a, b) for a, b in zip(rebuilt.prompts, first.prompts, strict=True))
    assert rebuilt.samples_without_keys == first.samples_without_keys
    _, again = sender.encode(second, send)
    assert len(sent) == 2 and again == (tokens[0], tokens[0])  # nothing new crossed
    assert sender.held() == 2 and len(store) == 2


def test_a_collected_array_is_forgotten_by_the_worker_with_the_next_message() -> None:
    store, sender = PromptStore(), PromptSender()
    sent, send = _wire(store)
    kept = np.ones(160, dtype=np.int16)
    program = Program(REQUEST, (kept, np.zeros(320, dtype=np.int16)))
    sender.encode(program, send)
    del program
    gc.collect()
    assert sender.held() == 1  # the second array is gone here
    _, tokens = sender.encode(Program(REQUEST, (kept, kept)), send)
    assert [m[0] for m in sent] == ["prompt", "prompt", "forget"] and len(store) == 1
    assert tokens == (0, 0)
