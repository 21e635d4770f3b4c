"""Peak memory of running a notebook's code in one process (Binder's limit is 2 GB).

Usage: python tools/binder_memory.py notebooks/01_quickstart.ipynb
Prints the peak resident memory in MiB; exits 1 when it exceeds --limit (default 2048).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("notebook")
    parser.add_argument("--limit", type=float, default=2048.0, help="MiB")
    args = parser.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    cells = [c for c in json.load(open(args.notebook))["cells"] if c["cell_type"] == "code"]
    for cell in cells:
        src = "".join(cell["source"])
        result = shell.run_cell(src, silent=True)
        if not result.success:
            print(f"cell failed: {src[:80]!r}", file=sys.stderr)
            return 2
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(f"peak memory of {args.notebook}: {peak:.0f} MiB (limit {args.limit:.0f} MiB)")
    return 0 if peak <= args.limit else 1


if __name__ == "__main__":
    sys.exit(main())
