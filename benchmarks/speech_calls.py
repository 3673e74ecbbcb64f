"""The calls the media benchmarks run: every call plays speech and collects a key, and is fed again at once.

Shared by :mod:`benchmarks.bench_calls` and :mod:`benchmarks.rtp_trials` (imported inside the child
processes, after they pin themselves to a core).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def speech_calls(count: int, make_endpoint: Callable[[int], tuple[Any, Any]],
                 prompt: str) -> tuple[Any, dict[str, Any]]:
    """A media loop of ``count`` calls; ``make_endpoint(i)`` gives call ``i``'s (caller, sink).

    Each call plays a welcome prompt, then ``prompt`` (three times, one second apart) collecting one key; when
    its request ends the same request is queued again. Returns the loop and the counters (``keys``,
    ``requests``) its events update.
    """
    from engine.core.reports import KeysReport, RequestReport
    from engine.core.timeline import Program
    from engine.media.call import Call
    from engine.media.loop import MediaLoop
    from engine.tts.synthesizer import synthesizer
    from engine.wire.request import parse_mult_orders

    speaker = synthesizer()
    prompts = (speaker.synthesize("Welcome to the service."), speaker.synthesize(prompt))
    request = parse_mult_orders({"appId": "a", "callId": "c", "orders": [
        {"playFlag": 0, "voiceStr": "w"},
        {"playFlag": 0, "voiceStr": "p", "getkey": 1, "maxRevCnt": 1, "playTime": 3, "spaceTime": 1}]})
    program = Program(request, prompts)
    counters: dict[str, Any] = {"keys": 0, "requests": 0}

    def on_event(call: Call, event: object, _at: int) -> None:
        if isinstance(event, KeysReport):
            counters["keys"] += len(event.digits)
        elif isinstance(event, RequestReport):
            counters["requests"] += 1
            call.pending.append(program)

    loop = MediaLoop()
    for i in range(count):
        caller, sink = make_endpoint(i)
        call = Call("a", f"c{i}", caller, sink, on_event)
        call.submit(program)
        loop.add(call)
    return loop, counters
