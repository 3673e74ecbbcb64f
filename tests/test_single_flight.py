"""SingleFlight: one computation per key in flight, its result or exception shared with the callers waiting."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from engine.single_flight import SingleFlight


def _get(flights: SingleFlight[int], key: str, make) -> int:
    owner, pending = flights.claim(key)
    return flights.run(key, pending, make) if owner else pending.result(timeout=30)


def test_callers_arriving_while_a_key_is_made_share_the_one_result() -> None:
    flights: SingleFlight[int] = SingleFlight()
    started, release = threading.Event(), threading.Event()
    made: list[int] = []

    def make() -> int:
        made.append(1)
        started.set()
        release.wait(30)
        return 42

    with ThreadPoolExecutor(8) as pool:
        owner = pool.submit(_get, flights, "k", make)
        assert started.wait(30)
        waiters = [pool.submit(_get, flights, "k", make) for _ in range(7)]
        release.set()
        assert owner.result(30) == 42 and [w.result(30) for w in waiters] == [42] * 7
    assert len(made) == 1
    assert flights.claim("k")[0]  # forgotten once made: the next caller makes it again


def test_the_owners_exception_reaches_every_waiter_and_the_key_is_freed() -> None:
    flights: SingleFlight[int] = SingleFlight()
    owner, pending = flights.claim("k")
    waiting, same = flights.claim("k")
    assert owner and not waiting and same is pending

    def fail() -> int:
        raise OSError("disk")

    with pytest.raises(OSError, match="disk"):
        flights.run("k", pending, fail)
    with pytest.raises(OSError, match="disk"):
        same.result(timeout=1)
    assert flights.claim("k")[0]
