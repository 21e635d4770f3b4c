"""Build the sdist and the wheel, check them, and run the wheel installed without the source tree.

What a user gets from ``pip install opticam_widgets-*.whl`` is exercised here, so a file missing
from the wheel fails CI, not a user:

1. the checkout's files (tracked and untracked, not ignored) are copied to a scratch folder and
   ``python -m build`` runs there (sdist, then the wheel built from that sdist), offline and
   without isolation, failing on any Python warning the build backend prints (e.g. setuptools'
   deprecations);
2. ``twine check --strict`` on both, plus a look inside: every module of the source package,
   ``py.typed``, the LICENSE, the SPDX license expression, the version and the ``opticam`` script;
3. a fresh virtual environment outside the source tree gets the wheel (``--no-deps``); the
   dependencies (torch, ...) are reused from the running environment by a ``.pth`` line that
   *appends* its site-packages to ``sys.path`` without processing its ``.pth`` files, so the
   editable install of the source tree there is never activated;
4. in that environment, from a scratch folder with ``PYTHONSAFEPATH=1``: a headless
   ``OptiCAM(load_default_model(), max_iter=3).explain(sample_image("coffee"))`` (asserting the
   package is imported from the fresh environment, the source tree is not on ``sys.path`` and
   ``__version__`` equals the installed metadata), then the CLI
   ``opticam explain sample:chelsea --max-iter 3 --out DIR``, checking the files it writes.

Usage: ``python tools/check_wheel.py [--keep]`` (``make wheel-check``). Prints one line per stage;
exits non-zero with the failing command's output on any problem.
"""

from __future__ import annotations

import argparse
import ast
import email.parser
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "opticam_widgets"
DIST_NAME = "opticam-widgets"
LICENSE_EXPRESSION = "Apache-2.0"
# Python warning categories (``SetuptoolsDeprecationWarning``, ``BuildBackendWarning``, ...);
# distutils' lower-case ``warning: build_py: byte-compiling is disabled`` log lines do not match.
WARNING_RE = re.compile(r"\b[A-Z]\w*Warning\b")

PROBE = r"""
import importlib.metadata, importlib.resources, json, os, sys
import numpy as np
import opticam_widgets
from opticam_widgets import OptiCAM, OptiCAMWidget, load_default_model, sample_image

venv, roots = sys.argv[1], [os.path.realpath(r) for r in sys.argv[2:]]
here = os.path.realpath(opticam_widgets.__file__)
assert here.startswith(os.path.realpath(venv) + os.sep), f"imported from {here}, not {venv}"
site = os.path.dirname(os.path.dirname(here))
entries = {os.path.realpath(p or ".") for p in sys.path}
elsewhere = [p for p in entries if p in roots  # a checkout, or any other copy of the package
             or (p != site and os.path.isdir(os.path.join(p, "opticam_widgets")))]
assert not elsewhere, f"a source tree is on sys.path: {elsewhere}"
editable = [m for m in sys.modules if "__editable__" in m]
assert not editable, f"editable finder of the source tree active: {editable}"
meta = importlib.metadata.version("opticam-widgets")
assert opticam_widgets.__version__ == meta, (opticam_widgets.__version__, meta)
assert importlib.resources.files("opticam_widgets").joinpath("py.typed").is_file()
assert OptiCAMWidget.__module__.startswith("opticam_widgets.widget")

img = sample_image("coffee")
result = OptiCAM(load_default_model(), max_iter=3).explain(img)
sal = result.saliency.numpy()
assert sal.shape == (1, img.size[1], img.size[0]), (sal.shape, img.size)
assert np.isfinite(sal).all() and sal.min() >= 0.0 and sal.max() <= 1.0, (sal.min(), sal.max())
assert sal.max() > sal.min(), "constant map"
chelsea = sample_image("chelsea").size
print(json.dumps({"version": meta, "shape": list(sal.shape), "chelsea": [chelsea[1], chelsea[0]]}))
"""


class CheckError(RuntimeError):
    """A check failed; the message says which and shows the evidence."""


def run(cmd: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None,
        what: str) -> str:
    """Run ``cmd``; return its combined output, or raise CheckError showing it."""
    proc = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, check=False)
    if proc.returncode != 0:
        raise CheckError(f"{what} failed (exit {proc.returncode}): {' '.join(map(str, cmd))}\n"
                         f"{proc.stdout}")
    return proc.stdout


def source_version(root: Path = ROOT) -> str:
    """The ``__version__ = "..."`` literal of the package's ``__init__.py`` (the one source)."""
    tree = ast.parse((root / PACKAGE / "__init__.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name) and node.targets[0].id == "__version__"
                and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)):
            return node.value.value
    raise CheckError(f"no `__version__ = \"...\"` literal in {PACKAGE}/__init__.py")


def expected_wheel_files(root: Path = ROOT) -> set[str]:
    """Every module of the source package, plus ``py.typed``, as wheel member names."""
    pkg = root / PACKAGE
    names = {p.relative_to(root).as_posix() for p in pkg.rglob("*.py")
             if "__pycache__" not in p.parts}
    return names | {f"{PACKAGE}/py.typed"}


def wheel_problems(wheel: Path, version: str, expected: set[str]) -> list[str]:
    """What is wrong with the built wheel (an empty list when nothing is).

    ``expected`` is :func:`expected_wheel_files`, listed before the build (a module another
    process adds to the tree during the build is then not a false "missing").
    """
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        info = f"{PACKAGE}-{version}.dist-info"
        problems = [f"missing {n}" for n in sorted(expected - names)]
        for member in (f"{info}/METADATA", f"{info}/entry_points.txt",
                       f"{info}/licenses/LICENSE"):
            if member not in names:
                problems.append(f"missing {member}")
        if problems:
            return problems
        meta = email.parser.Parser().parsestr(zf.read(f"{info}/METADATA").decode())
        scripts = zf.read(f"{info}/entry_points.txt").decode()
    if meta["Version"] != version:
        problems.append(f"METADATA Version {meta['Version']!r} != __version__ {version!r}")
    if meta["License-Expression"] != LICENSE_EXPRESSION:
        problems.append(f"METADATA License-Expression {meta['License-Expression']!r} "
                        f"!= {LICENSE_EXPRESSION!r}")
    if meta.get_all("License-File") != ["LICENSE"]:
        problems.append(f"METADATA License-File {meta.get_all('License-File')!r} != ['LICENSE']")
    if "opticam = opticam_widgets.cli:main" not in scripts:
        problems.append("entry_points.txt lacks the `opticam` console script")
    return problems


def sdist_problems(sdist: Path, version: str) -> list[str]:
    """Files a source distribution must carry that this one lacks."""
    import tarfile

    top = f"{PACKAGE}-{version}"
    with tarfile.open(sdist) as tf:
        names = set(tf.getnames())
    need = ["LICENSE", "README.md", "CHANGELOG.md", "pyproject.toml", f"{PACKAGE}/py.typed"]
    return [f"sdist lacks {n}" for n in need if f"{top}/{n}" not in names]


def stage_source(root: Path, dest: Path) -> Path:
    """Copy the checkout's files (tracked and untracked, not ignored) to ``dest``.

    The build then sees what a fresh clone would hold: no stale ``*.egg-info/SOURCES.txt`` (which
    setuptools merges into the sdist and which would hide a file the configuration no longer
    ships), no ``build/``, and one consistent snapshot even while the tree is being edited.
    """
    listed = subprocess.run(["git", "-C", str(root), "ls-files", "-z", "--cached", "--others",
                             "--exclude-standard"], capture_output=True, check=False)
    if listed.returncode != 0:
        raise CheckError(f"`git ls-files` failed in {root}: {listed.stderr.decode().strip()}")
    for name in filter(None, listed.stdout.decode().split("\0")):
        src = root / name
        if src.is_file():  # a tracked file deleted in the working tree is skipped
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


def build(tmp: Path, root: Path) -> tuple[Path, Path]:
    """Build the sdist and, from it, the wheel into ``tmp/dist``; refuse build warnings."""
    out = run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(tmp / "dist"),
               str(root)], what="python -m build")
    warned = [line.strip() for line in out.splitlines() if WARNING_RE.search(line)]
    if warned:
        raise CheckError("the build printed warnings:\n  " + "\n  ".join(warned))
    sdists = sorted((tmp / "dist").glob("*.tar.gz"))
    wheels = sorted((tmp / "dist").glob("*.whl"))
    if len(sdists) != 1 or len(wheels) != 1:
        raise CheckError(f"expected one sdist and one wheel, got {sdists + wheels}")
    return sdists[0], wheels[0]


def fresh_venv(tmp: Path, wheel: Path) -> Path:
    """A new venv with only the wheel installed; dependencies appended from this environment."""
    venv = tmp / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)], what="venv")
    python = venv / "bin" / "python"
    run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet",
         "--no-deps", "--no-index", "--disable-pip-version-check", str(wheel)],
        what="pip install the wheel")
    purelib = run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                  what="locate site-packages").strip()
    deps = sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})
    lines = [f"import sys; sys.path.append({d!r})" for d in deps]
    (Path(purelib) / "zz_reuse_dependencies.pth").write_text("\n".join(lines) + "\n")
    return venv


def isolated_env(venv: Path) -> dict[str, str]:
    """The environment variables for commands run in the fresh venv."""
    env = {k: v for k, v in os.environ.items()
           if k not in {"PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV"}}
    env.update(PYTHONSAFEPATH="1", PYTHONNOUSERSITE="1", MPLBACKEND="Agg",
               VIRTUAL_ENV=str(venv), PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}")
    return env


def exercise(venv: Path, tmp: Path, version: str, roots: list[Path]) -> dict[str, object]:
    """Headless explain and the CLI in the fresh venv; check what they return and write."""
    import numpy as np

    env, scratch = isolated_env(venv), tmp / "scratch"
    scratch.mkdir()
    out = run([str(venv / "bin" / "python"), "-c", PROBE, str(venv), *map(str, roots)], cwd=scratch,
              env=env, what="headless OptiCAM.explain in the fresh venv")
    probe = json.loads(out.strip().splitlines()[-1])
    cli = str(venv / "bin" / "opticam")
    shown = run([cli, "--version"], cwd=scratch, env=env, what="opticam --version").strip()
    if shown != f"opticam {version}":
        raise CheckError(f"`opticam --version` printed {shown!r}, expected 'opticam {version}'")
    maps = scratch / "maps"
    run([cli, "explain", "sample:chelsea", "--max-iter", "3", "--out", str(maps), "--no-progress"],
        cwd=scratch, env=env, what="opticam explain sample:chelsea")
    pngs, npys = sorted(maps.glob("chelsea*.png")), sorted(maps.glob("chelsea*.npy"))
    if len(pngs) != 1 or len(npys) != 1:
        raise CheckError(f"the CLI wrote {sorted(p.name for p in maps.iterdir())}, "
                         "expected one chelsea*.png and one chelsea*.npy")
    sal = np.load(npys[0])
    if list(sal.shape) != probe["chelsea"] or sal.dtype != np.float32:
        raise CheckError(f"CLI map {npys[0].name}: {sal.dtype} {sal.shape}, expected float32 "
                         f"{tuple(probe['chelsea'])}")
    if not (np.isfinite(sal).all() and 0.0 <= sal.min() < sal.max() <= 1.0):
        raise CheckError(f"CLI map {npys[0].name} is not a map in [0, 1]")
    probe["cli"] = [pngs[0].name, npys[0].name]
    return probe


def check(tmp: Path, root: Path) -> None:
    """All stages, one line each."""
    t0 = time.perf_counter()
    staged = stage_source(root, tmp / "src")
    version, expected = source_version(staged), expected_wheel_files(staged)
    sdist, wheel = build(tmp, staged)
    run([sys.executable, "-m", "twine", "check", "--strict", str(sdist), str(wheel)],
        what="twine check")
    problems = wheel_problems(wheel, version, expected) + sdist_problems(sdist, version)
    if problems:
        raise CheckError("the distributions are incomplete:\n  " + "\n  ".join(problems))
    t1 = time.perf_counter()
    print(f"wheel-check: built + twine-checked {sdist.name}, {wheel.name} "
          f"({wheel.stat().st_size // 1024} KiB) in {t1 - t0:.1f} s")
    venv = fresh_venv(tmp, wheel)
    t2 = time.perf_counter()
    probe = exercise(venv, tmp, version, [root, staged])
    t3 = time.perf_counter()
    print(f"wheel-check: fresh venv {t2 - t1:.1f} s; headless explain {probe['shape']} and CLI "
          f"{', '.join(probe['cli'])} from the installed wheel in {t3 - t2:.1f} s "
          f"(total {t3 - t0:.1f} s)")


def main(argv: list[str] | None = None) -> int:
    """Run the check in a scratch folder outside the source tree; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    parser.add_argument("--source", type=Path, default=ROOT, metavar="DIR",
                        help="source tree to build (default: this checkout)")
    args = parser.parse_args(argv)
    root = args.source.resolve()
    tmp = Path(tempfile.mkdtemp(prefix="opticam-wheel-check-"))
    if tmp.resolve().is_relative_to(root):
        raise SystemExit(f"scratch folder {tmp} is inside the source tree; set TMPDIR elsewhere")
    try:
        check(tmp, root)
    except CheckError as exc:
        print(f"wheel-check FAILED: {exc}\n(scratch folder kept: {tmp})", file=sys.stderr)
        return 1
    if args.keep:
        print(f"wheel-check: scratch folder kept: {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
