"""The journal's compaction: on the delivery side, the lock not held while the snapshot is made, nothing lost."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.server import journal as journal_module
from engine.server.journal import Journal

COMPACT_BYTES = 2000


def _size(tmp_path: Path) -> int:
    return (tmp_path / "journal.log").stat().st_size


def test_answers_never_compact_below_the_backstop_the_delivery_side_does(tmp_path: Path) -> None:
    journal = Journal(tmp_path, compact_bytes=COMPACT_BYTES)
    journal.call_started("app", "a")
    while _size(tmp_path) < 2 * COMPACT_BYTES:  # the HTTP side's writes: appended, not compacted
        journal.request_accepted("a")
    accepted = (_size(tmp_path) - 60) // 40
    journal.request_ended("a")  # the delivery side: compacts to what is open
    assert _size(tmp_path) < 200
    journal.close()
    [(app_id, call_id, open_requests)] = Journal(tmp_path).open_calls()
    assert (app_id, call_id) == ("app", "a") and open_requests >= accepted - 2


def test_records_written_while_the_snapshot_is_made_are_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    journal = Journal(tmp_path, compact_bytes=COMPACT_BYTES)
    for n in range(40):
        journal.call_started("app", f"c{n}")
        journal.request_accepted(f"c{n}")
    made = journal_module._snapshot_of
    snapshots: list[int] = []

    def while_writing(open_now: list[tuple[str, str, int]]) -> bytes:
        snapshots.append(len(open_now))
        journal.request_accepted("c0")  # the HTTP side goes on meanwhile: the lock is free
        journal.call_started("app", "late")
        journal.call_ended("c1")
        return made(open_now)

    monkeypatch.setattr(journal_module, "_snapshot_of", while_writing)
    before = _size(tmp_path)
    journal.request_ended("c2")  # past compact_bytes: compacts
    monkeypatch.setattr(journal_module, "_snapshot_of", made)
    assert snapshots == [40] and _size(tmp_path) < before  # compacted, from the 40 calls open then
    journal.request_accepted("late")  # written to the new file
    journal.close()
    kept = {call_id: count for _app, call_id, count in Journal(tmp_path).open_calls()}
    expected = {f"c{n}": 1 for n in range(40) if n != 1} | {"c0": 2, "c2": 0, "late": 1}
    assert kept == expected
    assert not (tmp_path / "journal.log.tmp").exists()
