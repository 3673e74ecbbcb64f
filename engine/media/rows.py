"""Calls served by a row port: many calls' caller frames and played frames moved in one step per tick.

Some endpoints are rows of one shared object: every call of the RTP hub is a row of its arrays of frames
heard and played. Such an endpoint offers that object as a :class:`RowPort` (its ``row_port()``). The media
loop then binds the call's row to it (:meth:`RowPort.bind`) and, per tick, the port writes every bound caller's
frame into its row of the loop's detector input (:meth:`RowPort.read_rows`, one fancy-index copy) and takes
every bound call's played frame at once (:meth:`RowPort.write_rows`), instead of a ``read`` and a ``write``
call (and a row copy each) per call. The played frames go through the port only when the call's sink is its
caller (a recording sink in between keeps the per-call path). A port serves one owner (one loop) at a time;
another loop's calls on it take the per-call path.

:class:`PortRows` is the loop's side: which rows each port hears and plays.
"""

from __future__ import annotations

import logging
from typing import Protocol

import numpy as np

log = logging.getLogger(__name__)


class RowPort(Protocol):
    """Endpoints whose caller frames and played frames are rows of one object, moved in one step per tick."""

    def bind(self, endpoint: object, row: int, play: bool, owner: object) -> bool:
        """Serve ``endpoint``'s caller into ``row`` (and its played frames from it when ``play``) for ``owner``.

        False: the port serves another owner (nothing bound).
        """

    def unbind(self, endpoint: object) -> None:
        """Stop serving ``endpoint``'s row."""

    def read_rows(self, heard: np.ndarray) -> np.ndarray | None:
        """Write every bound caller's frame of this tick into its row of ``heard`` (rows, 160) int16.

        Returns the rows whose frame is no audio of the caller's this tick (nothing arrived in time: the
        detector holds them), or None.
        """

    def write_rows(self, rows: np.ndarray, frames: np.ndarray) -> None:
        """``frames[i]`` (int16, 160 samples) was played on the call of row ``rows[i]`` in this tick."""


def row_port(endpoint: object) -> RowPort | None:
    """The port serving ``endpoint`` (its ``row_port()``), or None."""
    get = getattr(endpoint, "row_port", None)
    return get() if callable(get) else None


class PortRows:
    """The media loop's calls served by row ports: per port, the rows it hears and the rows it plays."""

    def __init__(self) -> None:
        self._of_call: dict[object, RowPort] = {}
        self._hearing: dict[RowPort, int] = {}  # calls heard through each port
        self._playing: dict[RowPort, dict[int, None]] = {}  # rows whose played frames each port takes
        # per port: its rows in order (a slice when they are consecutive: the usual) and as an index array
        self._plan: list[tuple[RowPort, list[int] | slice, np.ndarray]] | None = None

    def bind(self, call: object, caller: object, sink: object, row: int) -> tuple[bool, bool]:
        """Serve ``call`` (in ``row``) through its caller's port if it has one: (heard by it, played to it)."""
        port = row_port(caller)
        play = sink is caller
        if port is None or not port.bind(caller, row, play, self):
            return False, False
        self._of_call[call] = port
        self._hearing[port] = self._hearing.get(port, 0) + 1
        if play:
            self._playing.setdefault(port, {})[row] = None
            self._plan = None
        return True, play

    def unbind(self, call: object, caller: object, row: int) -> None:
        """``call`` (in ``row``) leaves; nothing when it was not served by a port."""
        port = self._of_call.pop(call, None)
        if port is None:
            return
        port.unbind(caller)
        left = self._hearing[port] - 1
        if left:
            self._hearing[port] = left
        else:
            del self._hearing[port]
        rows = self._playing.get(port)
        if rows is not None and row in rows:
            del rows[row]
            if not rows:
                del self._playing[port]
            self._plan = None

    def read(self, heard: np.ndarray) -> np.ndarray | None:
        """Every port writes its callers' frames into their rows of ``heard`` (a failing port is logged).

        Returns the rows that hold no audio this tick (see :meth:`RowPort.read_rows`), or None.
        """
        held: np.ndarray | None = None
        for port in self._hearing:
            try:
                rows = port.read_rows(heard)
            except Exception:
                log.exception("a row port failed to read %d callers", self._hearing[port])
                continue
            if rows is not None and len(rows):
                held = rows if held is None else np.concatenate([held, rows])
        return held

    def write(self, played: np.ndarray) -> None:
        """Hand each port the frames played on its rows (``played[row]``: (rows, 160) int16, a row per loop row)."""
        if self._plan is None:
            self._plan = [self._planned(port, sorted(rows)) for port, rows in self._playing.items()]
        for port, rows, index in self._plan:
            try:
                port.write_rows(index, played[rows])
            except Exception:
                log.exception("a row port failed to take %d played frames", len(index))

    @staticmethod
    def _planned(port: RowPort, rows: list[int]) -> tuple[RowPort, np.ndarray | slice, np.ndarray]:
        index = np.array(rows, dtype=np.int64)
        consecutive = rows[-1] - rows[0] + 1 == len(rows)
        return port, slice(rows[0], rows[-1] + 1) if consecutive else index, index
