"""Run one benchmark module in this process and save its rows as JSON (the runner's child process).

``python -m benchmarks.one NAME OUT.json [--quick]`` imports ``benchmarks.bench_NAME``, calls ``run(quick)``
and writes the rows to ``OUT.json``: a file rather than stdout, because the engine's dependencies (pyttsx3, a
server's access log) may print there. A module that raises still yields one row, noted ``failed: ...``.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .common import Row

ROW_FIELDS = {f.name for f in dataclasses.fields(Row)}


def failure_row(name: str, reason: str) -> Row:
    """The row that stands for a whole module that could not report (``value`` None, ``note`` says why)."""
    return Row(benchmark=name, case="(module)", value=None, unit="", note=f"failed: {reason}")


def to_row(item: Any) -> Row:
    """A :class:`Row` from a Row or a dict of Row fields (unknown keys dropped)."""
    if isinstance(item, Row):
        return item
    if isinstance(item, dict):
        return Row(**{k: v for k, v in item.items() if k in ROW_FIELDS})
    raise TypeError(f"run() returned {type(item).__name__}, not a Row")


def _jsonable(obj: Any) -> Any:
    """Numpy scalars and arrays (and anything else with ``tolist``/``item``) as plain JSON values."""
    for attr in ("tolist", "item"):
        if hasattr(obj, attr):
            return getattr(obj, attr)()
    return str(obj)


def rows_to_json(rows: Sequence[Row]) -> str:
    """Rows as a JSON list of objects (the runner reads them back with :func:`to_row`)."""
    return json.dumps([dataclasses.asdict(r) for r in rows], default=_jsonable, ensure_ascii=False)


def run_module(name: str, quick: bool) -> list[Row]:
    """``benchmarks.bench_NAME.run(quick)`` as rows; one ``failed`` row when it raises."""
    try:
        module = importlib.import_module(f"benchmarks.bench_{name}")
        rows = [to_row(item) for item in module.run(quick)]
    except Exception as exc:
        traceback.print_exc(file=sys.stderr)
        return [failure_row(name, f"{type(exc).__name__}: {exc}")]
    return rows or [Row(benchmark=name, case="(module)", value=None, unit="", note="no rows reported")]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the child process; exit status 0 when the module reported without raising."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.one", description=__doc__)
    parser.add_argument("name", help="the module's NAME in benchmarks/bench_NAME.py")
    parser.add_argument("out", type=Path, help="where to write the rows (JSON)")
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = parser.parse_args(argv)
    rows = run_module(args.name, args.quick)
    args.out.write_text(rows_to_json(rows), encoding="utf-8")
    failed = len(rows) == 1 and rows[0].case == "(module)" and rows[0].note.startswith("failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
