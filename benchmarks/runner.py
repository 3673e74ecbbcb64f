"""Finding the benchmark modules and running each in its own process (``python -m benchmarks.one NAME``).

One process per module: each gets a fresh interpreter (the engine allows one pyttsx3 engine per process, and
memory or threads one module leaves behind do not weigh on the next). Modules run one after another, never
side by side, so that each has the whole machine.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .common import Row
from .one import failure_row, to_row

PACKAGE_DIR = Path(__file__).resolve().parent
ROOT = PACKAGE_DIR.parent
#: The modules the issue asks for, in table order; other ``bench_*.py`` files follow alphabetically.
EXPECTED = ("render", "tts", "dtmf", "detect", "calls", "http")
QUICK_TIMEOUT_S = 120.0
FULL_TIMEOUT_S = 1800.0
POLL_S = 0.25


@dataclass
class ModuleResult:
    """One module's process: its rows, how long it ran, ``ok``/``failed``/``skipped``/``timeout``."""

    name: str
    rows: list[Row] = field(default_factory=list)
    seconds: float = 0.0
    status: str = "ok"


def discover(package_dir: Path = PACKAGE_DIR) -> list[str]:
    """The NAMEs of ``bench_NAME.py`` in the package: the expected ones first, in :data:`EXPECTED` order."""
    found = sorted(p.stem.removeprefix("bench_") for p in package_dir.glob("bench_*.py"))
    return [n for n in EXPECTED if n in found] + [n for n in found if n not in EXPECTED]


def select(only: str | None, package_dir: Path = PACKAGE_DIR) -> list[str]:
    """The modules to run: ``only`` (comma-separated NAMEs, order kept) or every expected and present one."""
    if only:
        return [n.strip().removeprefix("bench_").removesuffix(".py") for n in only.split(",") if n.strip()]
    # Every expected module, present or not (a missing one shows up as skipped), then any other present one.
    return list(EXPECTED) + [n for n in discover(package_dir) if n not in EXPECTED]


def _last_line(path: Path) -> str:
    try:
        lines = [line.strip() for line in path.read_text(encoding="utf-8", errors="replace").splitlines()]
    except OSError:
        return ""
    lines = [line for line in lines if line]
    return lines[-1][:200] if lines else ""


def _stop(proc: subprocess.Popen) -> None:
    """End the child we started, with its own process group (servers or load generators it spawned)."""
    try:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=5)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 9)
        proc.wait()


def run_module(name: str, quick: bool, timeout_s: float | None = None, verbose: bool = False,
               tick: Callable[[], None] = lambda: None, package_dir: Path = PACKAGE_DIR) -> ModuleResult:
    """Run ``bench_NAME`` in a new process; never raises for the module's own failures (they become rows)."""
    if not (package_dir / f"bench_{name}.py").is_file():
        row = Row(benchmark=name, case="(module)", value=None, unit="",
                  note=f"skipped: benchmarks/bench_{name}.py is not present")
        return ModuleResult(name, [row], 0.0, "skipped")
    timeout_s = timeout_s or (QUICK_TIMEOUT_S if quick else FULL_TIMEOUT_S)
    with tempfile.TemporaryDirectory(prefix=f"ipcc-bench-{name}-") as tmp:
        out, log = Path(tmp) / "rows.json", Path(tmp) / "stderr.log"
        command = [sys.executable, "-m", "benchmarks.one", name, str(out)] + (["--quick"] if quick else [])
        path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
        env = dict(os.environ, PYTHONPATH=path, MPLBACKEND="Agg")
        start = time.perf_counter()
        with open(log, "wb") as err:
            proc = subprocess.Popen(command, cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                                    stdout=subprocess.DEVNULL, stderr=None if verbose else err,
                                    start_new_session=True)
            try:
                while proc.poll() is None:
                    if time.perf_counter() - start > timeout_s:
                        _stop(proc)
                        row = failure_row(name, f"timed out after {timeout_s:g} s")
                        return ModuleResult(name, [row], time.perf_counter() - start, "timeout")
                    tick()
                    time.sleep(POLL_S)
            except BaseException:  # Ctrl-C: the child has its own session and would not hear it
                _stop(proc)
                raise
        seconds = time.perf_counter() - start
        try:
            rows = [to_row(item) for item in json.loads(out.read_text(encoding="utf-8"))]
        except (OSError, ValueError, TypeError) as exc:
            reason = _last_line(log) or f"no rows ({type(exc).__name__})"
            row = failure_row(name, f"exit status {proc.returncode}: {reason}")
            return ModuleResult(name, [row], seconds, "failed")
    return ModuleResult(name, rows, seconds, "ok" if proc.returncode == 0 else "failed")


def run_all(names: Sequence[str], quick: bool, timeout_s: float | None = None, progress: bool = True,
            verbose: bool = False) -> list[ModuleResult]:
    """Run ``names`` one after another under a tqdm bar (stderr), its clock ticking while a module runs."""
    from tqdm import tqdm

    results = []
    # Redrawn in place on a terminal; into a log (not a terminal) one line per module instead of per refresh.
    interactive = sys.stderr.isatty()
    with tqdm(total=len(names), desc="benchmarks", unit="module", file=sys.stderr, disable=not progress,
              dynamic_ncols=True, mininterval=0.25 if interactive else 3600) as bar:
        for name in names:
            bar.set_postfix_str(name)
            tick = bar.refresh if interactive else (lambda: None)
            results.append(run_module(name, quick, timeout_s, verbose, tick=tick))
            bar.update(1)
        bar.set_postfix_str("done")
    return results
