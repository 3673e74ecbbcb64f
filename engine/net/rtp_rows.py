"""The RTP hub as the media loop's row port (:mod:`engine.media.rows`): every session's frames moved at once.

Per slot of the hub, two columns: the media loop's row that hears the session's caller (``hear_row``) and the row
whose played frame the session sends (``play_row``), -1 when none. A session is bound by the loop (media thread)
whether or not the hub carries it yet: the session keeps its rows (``loop_rows``) and the hub copies them into
its slot when it attaches it. Per tick, :meth:`HubRows.read_rows` copies every bound slot's frame of
:attr:`~engine.net.rtp_hub.RtpHub.heard` into its loop row in one fancy-index copy, and
:meth:`HubRows.write_rows` puts the frames played on the bound rows into
:attr:`~engine.net.rtp_hub.RtpHub.played` in one step. The index of bound slots is rebuilt only when a session
is bound, unbound, attached or detached. A row whose session the hub stops carrying while it is still bound
is silenced at the next read (as a session's ``read`` gives silence once it is detached).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from engine.net.rtp_hub import RtpHub
    from engine.net.rtp_session import RtpSession

UNBOUND = (-1, -1)


class HubRows:
    """The loop rows of ``hub``'s slots (``capacity`` of them); serves one owner (one media loop) at a time."""

    def __init__(self, hub: RtpHub, capacity: int) -> None:
        self.hub = hub
        self.hear_row = np.full(capacity, -1, dtype=np.int64)
        self.play_row = np.full(capacity, -1, dtype=np.int64)
        self._owner: object | None = None
        self._bound = 0
        self._dirty = True
        self._silence: list[int] = []  # loop rows of sessions detached while bound
        self._hear_slots = self._hear_rows = np.zeros(0, dtype=np.int64)
        self._slot_of_row = np.zeros(0, dtype=np.int64)  # by loop row: the slot whose frame it plays (-1)

    @property
    def columns(self) -> list[np.ndarray]:
        """The per-slot columns (the hub moves rows with them)."""
        return [self.hear_row, self.play_row]

    # -- the row port (media thread) ----------------------------------------------------------------------

    def bind(self, endpoint: object, row: int, play: bool, owner: object) -> bool:
        """Hear ``endpoint`` (a session of this hub) into loop ``row``, and send what plays there when ``play``."""
        if self._owner is not None and self._owner is not owner:
            return False
        self._owner = owner
        self._bound += 1
        session: RtpSession = endpoint  # type: ignore[assignment]
        session.loop_rows = (row, row if play else -1)
        self._set(session)
        return True

    def unbind(self, endpoint: object) -> None:
        """Stop serving ``endpoint``'s rows (the last one unbound frees the port for another owner)."""
        session: RtpSession = endpoint  # type: ignore[assignment]
        if session.loop_rows == UNBOUND:
            return
        session.loop_rows = UNBOUND
        self._set(session)
        self._bound -= 1
        if not self._bound:
            self._owner = None

    def read_rows(self, heard: np.ndarray) -> np.ndarray | None:
        """Every bound caller's frame of this tick (from the hub's ``heard``) into its row of ``heard``.

        Returns the loop rows whose jitter buffer gave no audio this tick (None: none).
        """
        if self._dirty:
            self._index()
        if self._silence:
            heard[self._silence] = 0
            self._silence.clear()
        if not len(self._hear_slots):
            return None
        heard[self._hear_rows] = self.hub.heard[self._hear_slots]
        waiting = self.hub.waiting
        if not waiting.any() or len(waiting) <= int(self._hear_slots[-1]):  # (a slot attached since the read)
            return None
        return self._hear_rows[waiting[self._hear_slots]]

    def write_rows(self, rows: np.ndarray, frames: np.ndarray) -> None:
        """The frames played on loop ``rows`` into the hub's ``played`` of the slots bound to them."""
        if self._dirty:
            self._index()
        inverse = self._slot_of_row
        if len(rows) and int(rows.max()) < len(inverse):
            slots = inverse[rows]
        else:  # rows beyond every bound one: not carried
            slots = np.where(rows < len(inverse), inverse[np.minimum(rows, len(inverse) - 1)], -1) if len(inverse) \
                else np.full(len(rows), -1, dtype=np.int64)
        carried = slots >= 0
        if carried.all():
            self.hub.played[slots] = frames
        elif carried.any():
            self.hub.played[slots[carried]] = frames[carried]

    # -- the hub's side ---------------------------------------------------------------------------------------

    def attached(self, slot: int, session: RtpSession) -> None:
        """``session`` now lives in ``slot``: its rows into the columns."""
        self.hear_row[slot], self.play_row[slot] = session.loop_rows
        self._dirty = True

    def detached(self, slot: int) -> None:
        """The session in ``slot`` leaves the hub (before the last slot moves into it)."""
        if self.hear_row[slot] >= 0:
            self._silence.append(int(self.hear_row[slot]))
        self._dirty = True

    def _set(self, session: RtpSession) -> None:
        if session.slot >= 0:
            self.hear_row[session.slot], self.play_row[session.slot] = session.loop_rows
        self._dirty = True

    def _index(self) -> None:
        n = len(self.hub.sessions)
        hear, play = self.hear_row[:n], self.play_row[:n]
        self._hear_slots = np.flatnonzero(hear >= 0)
        self._hear_rows = hear[self._hear_slots]
        playing = np.flatnonzero(play >= 0)
        inverse = np.full(int(play.max()) + 1 if len(playing) else 0, -1, dtype=np.int64)
        inverse[play[playing]] = playing
        self._slot_of_row = inverse
        self._dirty = False
