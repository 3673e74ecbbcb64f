"""``python -m benchmarks``: run every benchmark, each beside its baseline, and print one table.

    python -m benchmarks [--quick] [--only NAME[,NAME]] [--json FILE] [--plot FILE.png] [--markdown]

Every ``benchmarks/bench_NAME.py`` defines ``run(quick: bool) -> list[Row]`` (see :mod:`benchmarks.common`)
and runs in its own process (:mod:`benchmarks.runner`), one after another, under a progress bar on stderr. A
module that fails or is missing still gets a row, noted. ``--quick`` uses fewer repetitions (under a minute).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from . import report, runner


def build_parser() -> argparse.ArgumentParser:
    """The runner's options."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions: the whole run in under 60 s")
    parser.add_argument("--only", metavar="NAME[,NAME]",
                        help=f"run only these modules (present: {', '.join(runner.discover()) or 'none'})")
    parser.add_argument("--json", type=Path, metavar="FILE",
                        help="save the figures, the machine and the modules")
    parser.add_argument("--plot", type=Path, metavar="FILE.png",
                        help="draw the series and the speed-ups (PNG)")
    parser.add_argument("--markdown", action="store_true",
                        help="print the table as Markdown for the README (machine line and how to reproduce)")
    parser.add_argument("--timeout", type=float, metavar="SECONDS",
                        help=f"per module (default {runner.QUICK_TIMEOUT_S:g} quick, "
                             f"{runner.FULL_TIMEOUT_S:g} full)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("-v", "--verbose", action="store_true", help="let the modules' stderr through")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmarks and print the table; 0 unless an option is unusable."""
    args = build_parser().parse_args(argv)
    names = runner.select(args.only)
    if not names:
        print("python -m benchmarks: --only names no module", file=sys.stderr)
        return 2
    info = report.machine_info()
    try:
        results = runner.run_all(names, args.quick, args.timeout, progress=not args.no_progress,
                                 verbose=args.verbose)
    except KeyboardInterrupt:
        print("python -m benchmarks: interrupted", file=sys.stderr)
        return 130
    rows = [row for result in results for row in result.rows]
    modules = [{"name": r.name, "status": r.status, "seconds": round(r.seconds, 3)} for r in results]
    if args.markdown:
        print(report.table_markdown(rows, info, args.quick))
    else:
        print(report.table_text(rows, info))
    if args.json:
        report.save_json(args.json, rows, info, modules, args.quick)
        print(f"figures saved to {args.json}", file=sys.stderr)
    if args.plot:
        panels = report.plot(args.plot, rows, info)
        print(f"plot ({panels} panels) saved to {args.plot}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
