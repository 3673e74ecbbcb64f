"""Lanes of the test suite: tests share the machine, at most a few at once, or (solo) have it to themselves.

``flock`` files in one folder, the machine's (:func:`lanes_folder`), so that every run of the suite on the machine
(xdist workers, a second copy of the suite) takes part:

* a readers-writer lock of two files: every test passes the *gate* to take the *lanes* shared; a solo test holds
  the gate (no test starts) while it waits for the lanes whole (the running tests end), and may keep both through
  the solo tests that follow it in its process;
* ``slots`` files (default :data:`SLOTS`): a shared test runs holding one, so that however many runs of the suite
  share the machine, at most that many of their tests run at once (real phones, browsers and media loops that
  keep real time beside them).

``tests/conftest.py`` puts every test in a lane.
"""

from __future__ import annotations

import fcntl
import os
import stat
import tempfile
from pathlib import Path
from typing import IO

#: The environment variable naming the folder of lane locks (default: one per user in the temporary folder).
LANES_ENV = "IPCC_TEST_LANES"
#: Tests that run at once on the machine at most (the suite's xdist workers).
SLOTS = 4


def lanes_folder() -> Path:
    """The folder of the lane locks: :data:`LANES_ENV`, or ``ipcc-test-lanes-<uid>`` in the temporary folder (0700).

    :class:`PermissionError` when it is a symbolic link or not the user's own.
    """
    folder = Path(os.environ.get(LANES_ENV) or Path(tempfile.gettempdir()) / f"ipcc-test-lanes-{os.getuid()}")
    folder.mkdir(mode=0o700, exist_ok=True)
    info = folder.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise PermissionError(f"{folder.name} is not a folder of this user's own: set {LANES_ENV} to one")
    return folder


class Lanes:
    """One process's place in the lanes of ``folder``: :meth:`enter` before a test, :meth:`leave` after it."""

    def __init__(self, folder: Path, slots: int = SLOTS) -> None:
        if slots < 1:
            raise ValueError(f"slots: at least 1, got {slots}")
        self.folder = folder
        self.slots = slots
        self.files: list[IO[str]] | None = None
        self.solo = False
        self.waiting_on = ""  # the slot file this process waits for, while all are taken

    @property
    def held(self) -> bool:
        """True between :meth:`enter` and the :meth:`leave` that gives the lanes back."""
        return self.files is not None

    def enter(self, solo: bool) -> None:
        """Take the lanes (``solo``: whole, once the tests in them end); nothing to do while held already."""
        if self.files is not None:
            return
        gate = open(self.folder / "gate", "a")  # noqa: SIM115 (held past this method; closed by leave)
        lanes = open(self.folder / "lanes", "a")  # noqa: SIM115
        files = [gate, lanes]
        fcntl.flock(gate, fcntl.LOCK_EX)
        fcntl.flock(lanes, fcntl.LOCK_EX if solo else fcntl.LOCK_SH)
        if not solo:
            fcntl.flock(gate, fcntl.LOCK_UN)
            files.append(self._slot())
        self.files, self.solo = files, solo

    def _slot(self) -> IO[str]:
        """A slot file locked: the first free one, else (all taken) the one this process waits on."""
        for index in range(self.slots):
            slot = open(self.folder / f"slot-{index}", "a")  # noqa: SIM115
            try:
                fcntl.flock(slot, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                slot.close()
                continue
            return slot
        self.waiting_on = f"slot-{os.getpid() % self.slots}"
        slot = open(self.folder / self.waiting_on, "a")  # noqa: SIM115
        fcntl.flock(slot, fcntl.LOCK_EX)
        self.waiting_on = ""
        return slot

    def leave(self, next_solo: bool = False) -> None:
        """Give the lanes back, unless this process holds them solo and its next test (``next_solo``) is solo too."""
        if self.files is None or (self.solo and next_solo):
            return
        for file in self.files:  # closing a file drops its lock
            file.close()
        self.files = None
