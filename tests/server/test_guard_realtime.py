"""The interpreter set for real time: the GIL switch interval, and no full collection while calls are live."""

from __future__ import annotations

import gc
import sys
import weakref
from collections.abc import Iterator

import pytest

from engine.server.realtime import FREEZE_TICKS, SWITCH_INTERVAL_S, RealTimeProcess


class _Node:
    """A cycle: a node that refers to itself (only the cycle collector can free it)."""

    def __init__(self) -> None:
        self.me = self


@pytest.fixture()
def restored() -> Iterator[None]:
    interval = sys.getswitchinterval()
    yield
    sys.setswitchinterval(interval)
    gc.unfreeze()
    gc.collect()


def _cycle() -> weakref.ref[_Node]:
    return weakref.ref(_Node())


@pytest.mark.usefixtures("restored")
def test_start_sets_the_switch_interval_and_freezes_what_start_up_made() -> None:
    # issue 10: "close the gap" — the media thread waited up to 5 ms for the GIL at every hand-over
    made = [[i] for i in range(1000)]
    RealTimeProcess().start()
    assert sys.getswitchinterval() == pytest.approx(SWITCH_INTERVAL_S)
    assert gc.get_freeze_count() >= len(made)
    assert all(obj is not made[0] for obj in gc.get_objects())  # out of every generation a collection scans


@pytest.mark.usefixtures("restored")
def test_survivors_are_frozen_every_freeze_ticks_and_their_cycles_wait_for_a_call_free_moment() -> None:
    # issue 10: gen-2 collections over many live objects held the GIL for tens of ms while calls played
    process = RealTimeProcess(freeze_ticks=FREEZE_TICKS, full_ticks=100, full_growth=0)
    process.start()
    young = _cycle()  # garbage already: the young collection before the freeze frees it
    alive = _Node()
    cycle = weakref.ref(alive)
    process.on_tick(FREEZE_TICKS - 1, live_calls=3)
    assert process.stats().freezes == 0  # only on multiples of freeze_ticks
    process.on_tick(FREEZE_TICKS, live_calls=3)
    assert young() is None
    assert process.stats().freezes == 1
    del alive  # now garbage, frozen: no collection while calls are live reaches it
    gc.collect()
    for ticks in range(2 * FREEZE_TICKS, 5 * FREEZE_TICKS, FREEZE_TICKS):
        process.on_tick(ticks, live_calls=3)
    assert cycle() is not None
    assert process.stats().full_collections == 0
    process.on_tick(5 * FREEZE_TICKS, live_calls=0)  # no call live, full_ticks passed: collected in full
    assert cycle() is None
    stats = process.stats()
    assert stats.full_collections == 1 and stats.last_found >= 1 and stats.freezes == 5
    process.on_tick(6 * FREEZE_TICKS, live_calls=0)  # within full_ticks of the last one: a freeze only
    assert process.stats().full_collections == 1


@pytest.mark.usefixtures("restored")
def test_a_full_collection_waits_for_enough_frozen_objects() -> None:
    process = RealTimeProcess(full_ticks=1, full_growth=10**9)
    process.start()
    process.on_tick(FREEZE_TICKS, live_calls=0)
    assert process.stats().full_collections == 0 and process.stats().freezes == 1


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="switch_interval_s"):
        RealTimeProcess(switch_interval_s=0)
    with pytest.raises(ValueError, match="freeze_ticks"):
        RealTimeProcess(freeze_ticks=0)
