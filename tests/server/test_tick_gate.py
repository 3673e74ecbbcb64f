"""A request that arrives during a media tick waits for the tick to end (RealTimeProcess.wait_for_tick).

Shown with real threads, synchronised on the process's own counters, never on time: a waiter returns when the
tick ends (long before its bound), returns at its bound when no tick ends, and never waits between ticks.
"""

from __future__ import annotations

import threading

from engine.server.realtime import RealTimeProcess
from engine.testing.server import wait_for

LONG_S = 30.0


def _waiter(process: RealTimeProcess, ticking: bool, bound_s: float) -> threading.Thread:
    thread = threading.Thread(target=process.wait_for_tick, args=(lambda: ticking, bound_s), daemon=True)
    thread.start()
    return thread


def test_a_request_during_a_tick_goes_on_when_the_tick_ends() -> None:
    process = RealTimeProcess()
    waiter = _waiter(process, True, LONG_S)
    wait_for(lambda: process.stats().waits_for_tick == 1, what="the request waiting")
    assert waiter.is_alive()
    process.on_tick(1, 10)  # the tick ends
    waiter.join(LONG_S / 2)
    assert not waiter.is_alive() and process.ticks_ended == 1


def test_the_wait_is_bounded_and_only_during_a_tick() -> None:
    process = RealTimeProcess()
    between = _waiter(process, False, LONG_S)  # between ticks: no wait at all
    between.join(LONG_S / 2)
    assert not between.is_alive() and process.stats().waits_for_tick == 0
    stuck = _waiter(process, True, 0.01)  # a tick that does not end: the bound
    stuck.join(LONG_S / 2)
    assert not stuck.is_alive() and process.stats().waits_for_tick == 1 and process.ticks_ended == 0


def test_a_tick_that_outlasts_one_wait_is_not_waited_for_again() -> None:
    process = RealTimeProcess()
    first = _waiter(process, True, 0.01)  # the tick does not end within the bound
    first.join(LONG_S / 2)
    second = _waiter(process, True, LONG_S)  # the same tick still runs: the next request goes on at once
    second.join(LONG_S / 2)
    assert not second.is_alive() and process.stats().waits_for_tick == 1
    process.on_tick(1, 10)  # the next tick: waited for again
    third = _waiter(process, True, LONG_S)
    wait_for(lambda: process.stats().waits_for_tick == 2, what="the request waiting for the next tick")
    process.on_tick(2, 10)
    third.join(LONG_S / 2)
    assert not third.is_alive()
