"""The test lanes: shared tests at once (at most ``slots``), a solo test alone, none starting while a solo one waits."""

from __future__ import annotations

import fcntl
import os
import threading
from pathlib import Path

import pytest

from engine.testing.harness import wait_for
from engine.testing.lanes import LANES_ENV, Lanes, lanes_folder


def _free(folder: Path, name: str, how: int) -> bool:
    """True when a lock ``how`` on ``folder/name`` could be taken now (probed without waiting, then dropped)."""
    with open(folder / name, "a") as probe:
        try:
            fcntl.flock(probe, how | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True


def test_shared_lanes_at_once_and_a_solo_test_waits_for_them_while_no_test_starts(tmp_path: Path) -> None:
    first, second, solo = Lanes(tmp_path), Lanes(tmp_path), Lanes(tmp_path)
    first.enter(solo=False)
    second.enter(solo=False)  # does not wait: two tests share the lanes
    assert first.held and second.held and _free(tmp_path, "gate", fcntl.LOCK_EX)
    waiting = threading.Thread(target=solo.enter, args=(True,))
    waiting.start()
    # the solo test takes the gate, then waits for the lanes
    wait_for(lambda: not _free(tmp_path, "gate", fcntl.LOCK_EX), 30, "the solo test to take the gate")
    assert waiting.is_alive() and not _free(tmp_path, "lanes", fcntl.LOCK_EX)
    first.leave()
    assert waiting.is_alive()  # one test is still in the lanes
    second.leave()
    waiting.join(timeout=30)
    assert not waiting.is_alive() and solo.held
    assert not _free(tmp_path, "lanes", fcntl.LOCK_SH) and not _free(tmp_path, "gate", fcntl.LOCK_EX)
    solo.leave(next_solo=True)  # the next test is solo too: kept
    assert solo.held and not _free(tmp_path, "lanes", fcntl.LOCK_SH)
    solo.leave(next_solo=False)
    assert not solo.held and _free(tmp_path, "lanes", fcntl.LOCK_EX) and _free(tmp_path, "gate", fcntl.LOCK_EX)


def test_the_lanes_folder_is_private_and_a_symlink_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(LANES_ENV, str(tmp_path / "lanes"))
    folder = lanes_folder()
    assert folder == tmp_path / "lanes" and (folder.stat().st_mode & 0o777) == 0o700
    (tmp_path / "elsewhere").mkdir()
    os.symlink(tmp_path / "elsewhere", tmp_path / "link")
    monkeypatch.setenv(LANES_ENV, str(tmp_path / "link"))
    with pytest.raises(PermissionError, match="not a folder of this user's own"):
        lanes_folder()


def test_at_most_slots_shared_tests_run_at_once(tmp_path: Path) -> None:
    first, second, third = Lanes(tmp_path, slots=2), Lanes(tmp_path, slots=2), Lanes(tmp_path, slots=2)
    first.enter(solo=False)
    second.enter(solo=False)
    assert not _free(tmp_path, "slot-0", fcntl.LOCK_EX) and not _free(tmp_path, "slot-1", fcntl.LOCK_EX)
    waiting = threading.Thread(target=third.enter, args=(False,))
    waiting.start()
    mine = f"slot-{os.getpid() % 2}"  # all slots taken: the one this process waits on
    wait_for(lambda: third.waiting_on == mine, 30, "the third test to wait for a slot")
    assert waiting.is_alive() and not third.held
    holder = first if Path(first.files[-1].name).name == mine else second
    other = second if holder is first else first
    other.leave()
    assert waiting.is_alive()  # its slot is still taken
    holder.leave()
    waiting.join(timeout=30)
    assert not waiting.is_alive() and third.held and Path(third.files[-1].name).name == mine
    third.leave()
    assert _free(tmp_path, "slot-0", fcntl.LOCK_EX) and _free(tmp_path, "slot-1", fcntl.LOCK_EX)


def test_slots_are_at_least_one(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="slots: at least 1"):
        Lanes(tmp_path, slots=0)
