"""Presenting rows: the plain table, the Markdown table for the README, the JSON file and the plot."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
import re
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

from .common import Row

HEADER = ("benchmark", "case", "value", "baseline", "baseline value", "target", "met")
TIME_UNITS = {"s", "ms", "us", "µs", "ns"}
REPRODUCE = ("`.venv/bin/python -m benchmarks --markdown` (after `pip install -e '.[bench]'`; "
             "`apt-get install espeak-ng sox` for the render baseline; `--quick` for a sub-minute run)")


def fmt(value: float | None) -> str:
    """A figure to 3 significant digits, without exponent between 0.001 and 1e9 (``-`` when missing)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if value == 0:
        return "0"
    magnitude = math.floor(math.log10(abs(value)))
    if magnitude >= 9 or magnitude < -3:
        return f"{value:.3g}"
    rounded = round(value, 2 - magnitude)
    return f"{rounded:,.0f}" if magnitude >= 2 else f"{rounded:.{2 - magnitude}f}"


def _with_unit(value: float | None, unit: str) -> str:
    text = fmt(value)
    return f"{text} {unit}".strip() if value is not None else text


def _met(met: bool | None) -> str:
    return "" if met is None else ("yes" if met else "NO")


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (else what :mod:`platform` knows)."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                return re.sub(r"\s+", " ", line.split(":", 1)[1]).strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def machine_info() -> dict[str, Any]:
    """What the figures were measured on: CPU, cores usable by this process, Python, OS, date."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    return {"cpu": cpu_model(), "cores": cores, "python": platform.python_version(),
            "os": f"{platform.system()} {platform.release()} {platform.machine()}",
            "date": date.today().isoformat()}


def machine_line(info: dict[str, Any]) -> str:
    """One line naming the machine: ``AMD EPYC, 2 cores, Python 3.11.7, Linux 6.1 x86_64, 2025-11-26``."""
    return f"{info['cpu']}, {info['cores']} cores, Python {info['python']}, {info['os']}, {info['date']}"


def _cells(rows: Sequence[Row]) -> tuple[list[tuple[str, ...]], list[str]]:
    """The table's cells, and the notes (a row's note is a footnote ``[n]`` on its case)."""
    cells, notes = [], []
    for row in rows:
        case = row.case
        if row.note:
            notes.append(row.note)
            case = f"{case} [{len(notes)}]"
        baseline_value = _with_unit(row.baseline_value, row.unit) if row.baseline else ""
        cells.append((row.benchmark, case, _with_unit(row.value, row.unit), row.baseline, baseline_value,
                      row.target, _met(row.met)))
    return cells, notes


def table_text(rows: Sequence[Row], info: dict[str, Any] | None = None) -> str:
    """The plain table (aligned columns), the machine line above it and the notes below."""
    cells, notes = _cells(rows)
    widths = [max(len(r[i]) for r in [HEADER, *cells]) for i in range(len(HEADER))]
    right = {2, 4}  # figures are right-aligned

    def line(r: Sequence[str]) -> str:
        cells = zip(r, widths, strict=True)
        return " | ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(cells))

    out = [f"Machine: {machine_line(info)}"] if info else []
    out += [line(HEADER), "-+-".join("-" * w for w in widths), *(line(r) for r in cells)]
    out += [f"[{i}] {note}" for i, note in enumerate(notes, 1)]
    return "\n".join(out)


def _md(cell: str) -> str:
    return cell.replace("|", "\\|")


def table_markdown(rows: Sequence[Row], info: dict[str, Any], quick: bool = False) -> str:
    """The table in Markdown for the README: the machine line, the table, the notes, how to reproduce."""
    cells, notes = _cells(rows)
    run = "quick run (`--quick`: fewer repetitions)" if quick else "full run"
    align = ["---", "---", "---:", "---", "---:", "---", "---"]
    out = [f"Measured on {machine_line(info)}; {run}; medians of several runs.", "",
           "| " + " | ".join(HEADER) + " |", "|" + "|".join(align) + "|"]
    out += ["| " + " | ".join(_md(c) for c in r) + " |" for r in cells]
    if notes:
        out += ["", *(f"[{i}] {_md(note)}  " for i, note in enumerate(notes, 1))]
    out += ["", f"Reproduce: {REPRODUCE}."]
    return "\n".join(out)


def save_json(path: Path, rows: Sequence[Row], info: dict[str, Any], modules: Sequence[dict[str, Any]],
              quick: bool) -> None:
    """Write the figures: the machine, the modules run (status, seconds) and every row."""
    from .one import _jsonable

    payload = {"machine": info, "quick": quick, "modules": list(modules),
               "rows": [dataclasses.asdict(r) for r in rows]}
    Path(path).write_text(json.dumps(payload, indent=2, ensure_ascii=False, default=_jsonable) + "\n",
                          encoding="utf-8")


def _lower_is_better(unit: str) -> bool:
    """True for durations (``s``, ``ms p99``, ``µs per call``); not for rates (``× real time``, ``s / s``)."""
    words = unit.split()
    return bool(words) and words[0] in TIME_UNITS and "/" not in unit


def speedups(rows: Sequence[Row]) -> list[tuple[str, float]]:
    """``(label, times better than the baseline)`` for rows with both figures (time units: baseline/value)."""
    out = []
    for r in rows:
        if r.value and r.baseline_value and r.value > 0 and r.baseline_value > 0:
            ratio = r.baseline_value / r.value if _lower_is_better(r.unit) else r.value / r.baseline_value
            out.append((f"{r.benchmark}: {r.case}", ratio))
    return out


def _draw_series(ax: Any, row: Row) -> None:
    series = row.series or {}
    x, ys = series.get("x", []), series.get("y", [])
    for label, y in (ys.items() if isinstance(ys, dict) else [(row.case, ys)]):
        ax.plot(x[: len(y)], [math.nan if v is None else v for v in y], marker="o", label=label)
    if series.get("hline") is not None:
        ax.axhline(series["hline"], color="red", linestyle="--", linewidth=1, label="target")
    if series.get("logx"):
        ax.set_xscale("log")
    if series.get("logy"):
        ax.set_yscale("log")
    ax.set_xlabel(series.get("xlabel", ""))
    ax.set_ylabel(series.get("ylabel", row.unit))
    ax.set_title(series.get("title", f"{row.benchmark}: {row.case}"), fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)


def _draw_speedups(ax: Any, ratios: list[tuple[str, float]]) -> None:
    labels, values = [r[0] for r in ratios], [r[1] for r in ratios]
    ax.barh(range(len(values)), values, color=["tab:green" if v >= 1 else "tab:red" for v in values])
    ax.set_yticks(range(len(values)), [label if len(label) <= 64 else label[:63] + "…" for label in labels],
                  fontsize=7)
    ax.invert_yaxis()
    ax.axvline(1.0, color="black", linewidth=1)
    ax.set_xscale("log")
    ax.set_xlabel("times better than the baseline (log scale; > 1: the engine wins)", fontsize=8)
    ax.set_title("engine vs baseline, measured in the same run", fontsize=9)
    ax.grid(True, axis="x", alpha=0.3)


def plot(path: Path, rows: Sequence[Row], info: dict[str, Any] | None = None) -> int:
    """Draw every row's ``series`` and the speed-ups over the baselines as a PNG; returns the number of panels.

    One panel per series, two a line, and the speed-ups across the bottom; a placeholder says so when there is nothing
    to draw.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series_rows = [r for r in rows if isinstance(r.series, dict) and r.series.get("x") is not None]
    ratios = speedups(rows)
    series_lines = math.ceil(len(series_rows) / 2)
    ratio_height = 1.0 + 0.22 * len(ratios) if ratios else 0.0
    heights = [4.0] * series_lines + ([ratio_height] if ratios else [])
    fig = plt.figure(figsize=(13, max(3.0, sum(heights) + 0.6)))
    grid = fig.add_gridspec(max(1, len(heights)), 2, height_ratios=heights or [1.0])
    for i, row in enumerate(series_rows):
        _draw_series(fig.add_subplot(grid[i // 2, i % 2]), row)
    if ratios:
        _draw_speedups(fig.add_subplot(grid[series_lines, :]), ratios)
    if not series_rows and not ratios:
        ax = fig.add_subplot(grid[0, :])
        ax.text(0.5, 0.5, "no series and no baselines to plot", ha="center", va="center")
        ax.set_axis_off()
    if info:
        fig.suptitle(machine_line(info), fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return len(series_rows) + (1 if ratios else 0)
