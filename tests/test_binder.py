"""Binder: the files it reads exist, and the quickstart fits in its 2 GB of memory."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_binder_files():
    req = (ROOT / "binder" / "requirements.txt").read_text()
    assert "download.pytorch.org/whl/cpu" in req  # CPU-only torch wheels
    assert re.search(r"^\.(\[.*\])?$", req, re.M)  # the package itself
    assert (ROOT / "binder" / "runtime.txt").read_text().startswith("python-3.")
    readme = (ROOT / "README.md").read_text()
    assert "mybinder.org/badge_logo.svg" in readme
    assert "urlpath=lab/tree/notebooks/01_quickstart.ipynb" in readme


@pytest.mark.slow
def test_quickstart_peak_memory_within_binder_limit():
    out = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "binder_memory.py"),
         str(ROOT / "notebooks" / "01_quickstart.ipynb"), "--limit", "2048"],
        capture_output=True, text=True, cwd=ROOT, timeout=600,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    peak = float(re.search(r"peak memory of .*: (\d+) MiB", out.stdout).group(1))
    assert peak < 2048


def test_peak_memory_is_the_notebooks_own_not_its_parents():
    # ru_maxrss survives exec: a child of a large process (pytest) reported the parent's peak
    code = ("import sys, numpy; big = numpy.ones(64_000_000); import subprocess; "
            "print(subprocess.run([sys.executable, '-c', 'import binder_memory as b; "
            "print(b.peak_mib())'], capture_output=True, text=True, "
            f"cwd={str(ROOT / 'tools')!r}).stdout)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert 0 < float(out.stdout) < 200, out.stdout + out.stderr  # parent holds 488 MiB


def _dist_closure(requirements: list[str], extras: set[str]) -> set[str]:
    """Distribution names installed by ``requirements`` (and what they require), normalised."""
    from importlib import metadata

    from packaging.requirements import Requirement

    seen: set[str] = set()
    todo = [(r, extras) for r in requirements]
    while todo:
        text, active = todo.pop()
        req = Requirement(text)
        if req.marker and not any(req.marker.evaluate({"extra": e}) for e in active | {""}):
            continue
        name = re.sub(r"[-_.]+", "-", req.name).lower()
        if name in seen:
            continue
        seen.add(name)
        try:
            todo += [(r, set(req.extras)) for r in metadata.requires(req.name) or []]
        except metadata.PackageNotFoundError:
            pass
    return seen


def test_binder_installs_what_every_notebook_imports():
    """Each notebook's third-party imports come with Binder's requirements (notebook 05 needs
    pyarrow, DuckDB and Polars, which the package's core does not bring)."""
    from importlib import metadata

    lines = [ln.split("#")[0].strip() for ln in
             (ROOT / "binder" / "requirements.txt").read_text().splitlines()]
    reqs = [ln for ln in lines if ln and not ln.startswith(("-", "."))]
    own = next(ln for ln in lines if ln.startswith("."))
    extras = set(re.findall(r"[\w-]+", own[own.find("[") + 1:own.find("]")] if "[" in own else ""))
    installed = _dist_closure(reqs + [f"opticam-widgets[{','.join(sorted(extras))}]"], extras)
    dists = metadata.packages_distributions()
    missing = set()
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = json.loads(nb.read_text())["cells"]
        code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
        for mod in re.findall(r"^\s*(?:import ([A-Za-z_]\w*)|from ([A-Za-z_]\w*)[\w.]* import)",
                              code, re.M):
            mod = mod[0] or mod[1]
            if mod in sys.stdlib_module_names or mod == "opticam_widgets":
                continue
            names = {re.sub(r"[-_.]+", "-", d).lower() for d in dists.get(mod, [mod])}
            if not names & installed:
                missing.add(f"{nb.name}: {mod}")
    assert not missing, sorted(missing)
