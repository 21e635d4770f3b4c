"""Peak memory of running a notebook's code in one process (Binder's limit is 2 GB).

Usage: python tools/binder_memory.py notebooks/01_quickstart.ipynb
Prints the peak resident memory in MiB; exits 1 when it exceeds --limit (default 2048).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
from pathlib import Path


def peak_mib() -> float:
    """This process's own peak resident memory in MiB.

    ``VmHWM`` belongs to the process's address space, which ``exec`` makes anew. ``ru_maxrss`` is
    kept across ``exec``: a process started by a large one (pytest after hundreds of tests) reports
    its parent's peak, not its own (seen in CI: 2067 MiB for a notebook that peaks at 930 MiB).
    """
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # not Linux


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("notebook")
    parser.add_argument("--limit", type=float, default=2048.0, help="MiB")
    args = parser.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    from IPython.core.interactiveshell import InteractiveShell

    from opticam_widgets.support.jobs import running_jobs

    shell = InteractiveShell.instance()
    cells = [c for c in json.load(open(args.notebook))["cells"] if c["cell_type"] == "code"]
    for cell in cells:
        src = "".join(cell["source"])
        result = shell.run_cell(src, silent=True)
        if not result.success:
            print(f"cell failed: {src[:80]!r}", file=sys.stderr)
            return 2
    for job in running_jobs():  # Run All does not wait for the widget's runs; the peak does
        job.wait(timeout=600)
    peak = peak_mib()
    print(f"peak memory of {args.notebook}: {peak:.0f} MiB (limit {args.limit:.0f} MiB)")
    return 0 if peak <= args.limit else 1


if __name__ == "__main__":
    sys.exit(main())
