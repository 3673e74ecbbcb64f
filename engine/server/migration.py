"""The one-time move of an older state folder's ``events.jsonl`` into the segmented event log.

Before the segmented log, events were kept as JSON lines in ``<state>/events.jsonl`` and acknowledgements as
``{"seq"}`` lines in ``<state>/delivered.jsonl``. When the first exists, its records (those after the new
log's last ``seq``) are appended to the new log, the acknowledged ones are recorded as acknowledged, and
both files are renamed ``*.migrated``: nothing unacknowledged is lost by an upgrade, and the next start-up
does not read them again.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from engine.server.acks import AckBook
from engine.server.event_log import EventLog

log = logging.getLogger(__name__)
BATCH = 1000


def _json_lines(path: Path) -> Iterator[dict[str, Any]]:
    if not path.exists():
        return
    with path.open("rb") as file:
        for line in file:
            try:
                record = json.loads(line)
            except ValueError:
                continue  # a torn line of the old format
            if isinstance(record, dict) and isinstance(record.get("seq"), int):
                yield record


def migrate_jsonl(state_dir: Path, event_log: EventLog, book: AckBook) -> int:
    """Move ``events.jsonl`` (and ``delivered.jsonl``) into ``event_log`` and ``book``; returns the events moved."""
    old = state_dir / "events.jsonl"
    if not old.exists():
        return 0
    done = {record["seq"] for record in _json_lines(state_dir / "delivered.jsonl")}
    moved, batch = 0, []
    for record in _json_lines(old):
        if record["seq"] <= event_log.last_seq or not {"appId", "callId", "event"} <= record.keys():
            continue
        batch.append({key: record[key] for key in ("seq", "appId", "callId", "event")})
        if record["seq"] in done:
            book.ack(record["appId"], record["seq"])
        if len(batch) >= BATCH:
            event_log.append(batch)
            moved, batch = moved + len(batch), []
    event_log.append(batch)
    moved += len(batch)
    event_log.sync()
    book.checkpoint()
    for path in (old, state_dir / "delivered.jsonl"):
        if path.exists():
            path.rename(path.with_name(path.name + ".migrated"))
    log.warning("state folder: %d events moved from events.jsonl to the segmented event log", moved)
    return moved
