"""Run every benchmark in one process and print one markdown report.

The report also goes to ``benchmarks/results/performance.md``. Each question's benchmark measures
the things it compares side by side, interleaved, and reports medians and ratios.

Usage::

    python benchmarks/run_all.py                 # everything (< 10 minutes on 2 cores)
    python benchmarks/run_all.py iteration peers # some sections only
    OPTICAM_BENCH_QUICK=1 python benchmarks/run_all.py   # a fast smoke run
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import common as C  # noqa: E402

SECTIONS = {
    "iteration": "bench_iteration",
    "peers": "bench_peers",
    "levers": "bench_levers",
    "batching": "bench_batching",
    "widget": "bench_widget_latency",
    "time-to-quality": "bench_time_to_quality",
    "big-photo": "bench_big_photo",
    "dataset": "bench_dataset",
    "explorer": "bench_explorer",
}
RESULTS = HERE / "results" / "performance.md"


def main(argv: list[str] | None = None) -> int:
    """Run the selected sections (all by default); print and save the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sections", nargs="*", metavar="SECTION",
                        help=f"sections to run, among {', '.join(SECTIONS)} (default: all)")
    parser.add_argument("--output", type=Path, default=RESULTS,
                        help=f"markdown file to write (default: {RESULTS})")
    args = parser.parse_args(argv)
    unknown = [s for s in args.sections if s not in SECTIONS]
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)}; choose among "
                     f"{', '.join(SECTIONS)}")
    C.setup()
    chosen = args.sections or list(SECTIONS)
    start = time.perf_counter()
    header = [
        "# opticam-widgets — performance report",
        "",
        f"Generated {datetime.datetime.now().isoformat(timespec='seconds')} by "
        f"`python benchmarks/run_all.py`{' (quick mode)' if C.QUICK else ''}. CPU "
        f"({C.cpu_isa()}), {C.THREADS} threads, 224×224 inputs. Everything compared is measured "
        "side by side in this process, interleaved; medians of repeats; ratios matter more than "
        "absolute times (other processes may share the cores: see the load average).",
        "",
        "## Machine",
        "",
        C.machine_table(),
        "",
    ]
    print("\n".join(header), flush=True)
    parts = list(header)
    failed = 0
    for key in chosen:
        try:
            module = importlib.import_module(SECTIONS[key])
            section = C.run_section(module.run)
            text = section.markdown()
        except Exception:  # one broken section must not hide the others
            failed += 1
            text = f"## {key}\n\n```\n{traceback.format_exc()}```\n"
        print(text, flush=True)
        parts.append(text)
    footer = (f"_total wall time: {time.perf_counter() - start:.0f} s; load average at the end: "
              f"{C.load_average()}_\n")
    print(footer)
    parts.append(footer)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text("\n".join(parts))
    print(f"written to {args.output}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
