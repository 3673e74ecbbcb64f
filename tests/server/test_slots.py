"""The guard's pieces alone: preparation slots (first come, first served, bounded waits), the token bucket, limits.

On the event loop of ``asyncio.run`` and an injected clock; no server.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

from engine.errors import BusyError
from engine.server.limits import AppLimits, GuardSettings, TokenBucket
from engine.server.slots import PreparationSlots

T = TypeVar("T")


async def _until(predicate: Callable[[], bool], turns: int = 1000) -> None:
    """Let the event loop run until ``predicate`` holds (at most ``turns`` turns: no clock involved)."""
    for _ in range(turns):
        if predicate():
            return
        await asyncio.sleep(0)
    raise AssertionError("the condition never held")


def _run_slots(limits: AppLimits, wait_s: float, script: Callable[[PreparationSlots], Awaitable[T]]) -> T:
    slots = PreparationSlots(GuardSettings(defaults=limits, preparing_wait_s=wait_s))
    return asyncio.run(script(slots))  # type: ignore[arg-type]


def test_a_request_waits_for_a_slot_then_gets_it_first_come_first_served() -> None:
    async def script(slots: PreparationSlots) -> list[str]:
        order: list[str] = []
        first = asyncio.get_running_loop().create_future()

        async def work(name: str, gate: asyncio.Future[None] | None) -> str:
            async def body() -> str:
                order.append(f"start {name}")
                if gate is not None:
                    await gate
                return name
            return await slots.run("a", lambda: asyncio.ensure_future(body()))  # type: ignore[arg-type]

        tasks = [asyncio.create_task(work("one", first))]
        await asyncio.sleep(0)  # the first takes the only slot
        tasks += [asyncio.create_task(work(name, None)) for name in ("two", "three")]
        await _until(lambda: slots.waiting() == {"a": 2})
        assert slots.in_preparation() == {"a": 1}
        first.set_result(None)
        assert await asyncio.gather(*tasks) == ["one", "two", "three"]
        assert slots.in_preparation() == {} and slots.waiting() == {}
        return order

    assert _run_slots(AppLimits(preparing=1), 60, script) == ["start one", "start two", "start three"]


def test_a_wait_is_bounded_then_refused_108102_and_leaves_no_waiter() -> None:
    async def script(slots: PreparationSlots) -> str:
        await slots.acquire("a")  # never given back here
        with pytest.raises(BusyError) as refused:
            await slots.acquire("a")
        assert slots.waiting() == {} and slots.in_preparation() == {"a": 1}
        return str(refused.value)

    assert _run_slots(AppLimits(preparing=1), 0.05, script) == (
        "appId: waited 0.05 s for one of this application's 1 preparation slots (speech, files)")


def test_a_cancelled_waiter_leaves_the_queue_and_a_slot_is_given_back_when_work_fails() -> None:
    async def script(slots: PreparationSlots) -> None:
        await slots.acquire("a")
        waiter = asyncio.create_task(slots.acquire("a"))
        await _until(lambda: slots.waiting() == {"a": 1})
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert slots.waiting() == {}
        slots.release("a")

        async def broken() -> None:
            raise RuntimeError("the synthesizer broke")
        with pytest.raises(RuntimeError):
            await slots.run("a", lambda: asyncio.ensure_future(broken()))
        assert slots.in_preparation() == {}

    _run_slots(AppLimits(preparing=1), 60, script)


def test_a_full_queue_refuses_at_once_naming_the_limits() -> None:
    async def script(slots: PreparationSlots) -> str:
        await slots.acquire("a")
        with pytest.raises(BusyError) as refused:
            await slots.acquire("a")
        await slots.acquire("b")  # another application has its own slots
        return str(refused.value)

    assert _run_slots(AppLimits(preparing=1, preparing_queue=0), 60, script) == (
        "appId: 1 requests of this application are being prepared (speech, files) and 0 wait; "
        "at most 1 at once and 0 waiting")


def test_token_bucket_refills_at_its_rate_on_the_injected_clock() -> None:
    bucket = TokenBucket(rate_per_s=10, burst=2, now_s=100.0)
    assert [bucket.take(100.0) for _ in range(3)] == [True, True, False]
    assert bucket.take(100.05) is False  # half a token
    assert bucket.take(100.1) is True  # one token after 0.1 s
    assert [bucket.take(200.0) for _ in range(3)] == [True, True, False]  # never more than the burst


@pytest.mark.parametrize("bad", [{"calls": 0}, {"burst": 1.5}, {"requests_per_s": 0}, {"preparing": True},
                                 {"preparing_queue": -1}])
def test_limits_are_validated_loudly(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=next(iter(bad))):
        AppLimits(**bad)  # type: ignore[arg-type]
