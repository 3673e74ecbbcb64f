"""The disk-full handling of the event log: write what can be written, say once when the disk refuses.

A record that is not JSON (a bug elsewhere) is logged with its traceback and left out; the others are
written. When the state folder cannot be written (a full disk, or another ``OSError``), one clear log line
says so, nothing is written and the caller keeps the items in memory to try again; when writing works
again, one line says delivery resumes.
"""

from __future__ import annotations

import logging
import queue
from typing import Any

from engine.server.event_log import EventLog
from engine.server.framing import frame, is_disk_full

log = logging.getLogger("engine.server.delivery")  # the delivery's log, as before the split
Item = dict[str, Any]  # an event record (with "seq") or the end of a call ({"end": call_id})


class LogWriter:
    """Appends the event records of a batch to ``event_log``; :attr:`disk_full` while it cannot."""

    def __init__(self, event_log: EventLog) -> None:
        self.log = event_log
        self.disk_full = False

    def write(self, items: list[Item]) -> tuple[list[Item], list[Item]] | None:
        """Log the records among ``items``; returns (the items kept, the records written), None when refused.

        None: the disk refused, nothing was written; the caller keeps every item and tries again later.
        """
        records = [item for item in items if "seq" in item]
        try:
            try:
                self.log.append(records)
            except (TypeError, ValueError):  # a bug elsewhere: an event that is not JSON; the others go on
                records = storable(records)
                items = [item for item in items if "seq" not in item or item in records]
                self.log.append(records)
        except OSError as exc:
            if not self.disk_full:
                what = "the disk is full" if is_disk_full(exc) else f"{type(exc).__name__}: {exc.strerror}"
                log.error("state folder: cannot write the event log (%s); %d events wait in memory and are "
                          "written as soon as it can be", what, len(records))
            self.disk_full = True
            return None
        if self.disk_full:
            log.warning("state folder: the event log is written again; delivery resumes")
            self.disk_full = False
        return items, records


def storable(records: list[Item]) -> list[Item]:
    """The records that can be written; each other one is logged with its traceback and left out."""
    kept = []
    for record in records:
        try:
            frame(record)
        except (TypeError, ValueError):
            log.exception("event %d of call %.64s cannot be stored as JSON; left out", record["seq"],
                          record["callId"])
            continue
        kept.append(record)
    return kept


def drain(inbox: queue.SimpleQueue[Item]) -> list[Item]:
    """Everything queued in ``inbox`` now, in order (never waits)."""
    batch = []
    while True:
        try:
            batch.append(inbox.get_nowait())
        except queue.Empty:
            return batch
