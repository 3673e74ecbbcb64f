"""The benchmark runner: table, Markdown, JSON and plot on made-up rows; failures and missing modules as rows.

And one real quick run of a benchmark module through the command line (dtmf: the cheapest with targets; the
render module starts a dozen processes and costs twice its CPU).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import one, report, runner
from benchmarks.common import Row

ROOT = Path(__file__).resolve().parent.parent
INFO = {"cpu": "Test CPU 9000", "cores": 2, "python": "3.11.7", "os": "Linux 6.1 x86_64",
        "date": "2025-11-26"}
ROWS = [
    Row("render", "cold", 0.31234, "s", "espeak-ng + sox", 0.0412, "< 1 s", True, note="new process"),
    Row("render", "warm", 1534.7, "× real time", "espeak-ng + sox", 2750.0, "≥ 1000×", True),
    Row("calls", "largest call count", 120, "calls", note="a|pipe",
        series={"x": [10, 50, 100], "y": {"p50": [0.1, 0.3, None], "p99": [0.5, 1.0, 6.0]},
                "xlabel": "calls", "ylabel": "ms", "hline": 5.0}),
    Row("http", "(module)", None, "", note="failed: boom"),
]


@pytest.mark.parametrize(("value", "text"), [
    (None, "-"), (0, "0"), (0.31234, "0.312"), (1534.7, "1,530"), (12.345, "12.3"), (0.0004567, "0.000457"),
    (2.0e-6, "2e-06"), (7, "7.00"), (-3.21, "-3.21"),
])
def test_fmt_gives_three_significant_digits(value: float | None, text: str) -> None:
    assert report.fmt(value) == text


def test_plain_table_has_the_columns_the_figures_and_the_notes() -> None:
    text = report.table_text(ROWS, INFO)
    lines = text.splitlines()
    assert lines[0].startswith("Machine: Test CPU 9000, 2 cores, Python 3.11.7")
    assert [c.strip() for c in lines[1].split("|")] == list(report.HEADER)
    assert "0.312 s" in text and "0.0412 s" in text and "1,530 × real time" in text
    assert "cold [1]" in text and "[1] new process" in text and "[3] failed: boom" in text
    assert len({len(line) for line in lines[1:7]}) == 1  # aligned


def test_markdown_table_carries_the_machine_line_and_how_to_reproduce() -> None:
    md = report.table_markdown(ROWS, INFO, quick=True)
    assert md.startswith("Measured on Test CPU 9000, 2 cores, Python 3.11.7, Linux 6.1 x86_64, 2025-11-26")
    assert "| benchmark | case | value | baseline | baseline value | target | met |" in md
    assert "| render | cold [1] | 0.312 s | espeak-ng + sox | 0.0412 s | < 1 s | yes |" in md
    assert "a\\|pipe" in md and "python -m benchmarks --markdown" in md


def test_machine_info_names_cpu_cores_python_and_date() -> None:
    info = report.machine_info()
    assert info["cpu"] and info["cores"] >= 1 and info["python"].count(".") == 2 and len(info["date"]) == 10


def test_json_round_trip_and_plot(tmp_path: Path) -> None:
    path = tmp_path / "figures.json"
    report.save_json(path, ROWS, INFO, [{"name": "render", "status": "ok", "seconds": 1.0}], quick=True)
    saved = json.loads(path.read_text(encoding="utf-8"))
    assert saved["machine"] == INFO and saved["quick"] is True
    assert [one.to_row(r) for r in saved["rows"]] == ROWS
    png = tmp_path / "figures.png"
    assert report.plot(png, ROWS, INFO) == 2  # the series panel and the speed-ups
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_speedups_know_durations_from_rates() -> None:
    assert dict(report.speedups(ROWS)) == pytest.approx({"render: cold": 0.0412 / 0.31234,
                                                         "render: warm": 1534.7 / 2750.0})


def test_rows_with_numpy_values_serialise() -> None:
    np = pytest.importorskip("numpy")
    rows = [Row("x", "y", np.float64(1.5), "s", series={"x": np.arange(3), "y": [np.int64(1)] * 3})]
    assert json.loads(one.rows_to_json(rows))[0]["series"]["x"] == [0, 1, 2]


def test_a_failing_module_and_a_missing_module_become_rows() -> None:
    failed = one.run_module("does_not_exist", quick=True)
    assert len(failed) == 1 and failed[0].value is None and failed[0].note.startswith("failed: ")
    missing = runner.run_module("does_not_exist", quick=True)
    assert missing.status == "skipped" and missing.rows[0].note.startswith("skipped: ")


def test_selection_lists_expected_modules_even_when_missing() -> None:
    assert runner.select(None)[: len(runner.EXPECTED)] == list(runner.EXPECTED)
    assert runner.select("render, bench_tts.py") == ["render", "tts"]


def test_quick_run_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "dtmf.json"
    done = subprocess.run([sys.executable, "-m", "benchmarks", "--only", "dtmf", "--quick", "--no-progress",
                           "--json", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "benchmark | case" in done.stdout
    rows = [one.to_row(r) for r in json.loads(out.read_text(encoding="utf-8"))["rows"]]
    assert rows and all(r.benchmark == "dtmf" for r in rows)
    assert all(r.value is not None and r.value > 0 for r in rows), [r.note for r in rows]
    assert any(r.target and r.met is not None for r in rows)
