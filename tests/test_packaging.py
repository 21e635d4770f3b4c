"""Packaging metadata (PEP 639 license, one version source, py.typed) and the wheel checker.

The real build-install-run check is ``make wheel-check`` (tools/check_wheel.py, part of
``make test``); these tests pin the metadata it relies on and show that its inspection of a wheel
fails on a wheel missing a module.
"""

from __future__ import annotations

import importlib.util
import sys
import zipfile
from pathlib import Path

import pytest

import opticam_widgets

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python < 3.11
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[1]


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def _checker():
    spec = importlib.util.spec_from_file_location("check_wheel", ROOT / "tools" / "check_wheel.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_license_is_an_spdx_expression_with_its_file():
    meta = _pyproject()
    project = meta["project"]
    assert project["license"] == "Apache-2.0"
    assert project["license-files"] == ["LICENSE"]
    assert not [c for c in project.get("classifiers", []) if c.startswith("License ::")]
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text
    # PEP 639 (`license` string, `license-files`) needs setuptools >= 77
    requires = meta["build-system"]["requires"]
    assert requires == ["setuptools>=77.0.3"]


def test_version_has_one_source():
    meta = _pyproject()
    assert "version" not in meta["project"]
    assert "version" in meta["project"]["dynamic"]
    attr = meta["tool"]["setuptools"]["dynamic"]["version"]["attr"]
    assert attr == "opticam_widgets.__version__"
    assert _checker().source_version(ROOT) == opticam_widgets.__version__
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert f"## {opticam_widgets.__version__}" in changelog


def test_py_typed_is_package_data():
    assert (ROOT / "opticam_widgets" / "py.typed").is_file()
    package_data = _pyproject()["tool"]["setuptools"]["package-data"]
    assert "py.typed" in package_data["opticam_widgets"]


def test_extras():
    extras = _pyproject()["project"]["optional-dependencies"]
    assert {"baselines", "test", "bench", "lab", "ray", "dataset"} <= set(extras)
    assert any(r.startswith("ray[data]") for r in extras["ray"])
    assert any(r.startswith("pyarrow") for r in extras["dataset"])
    assert {"build>=1", "twine>=5"} <= set(extras["test"])


def _fake_wheel(path: Path, members: set[str], version: str,
                license: str = "Apache-2.0") -> Path:
    info = f"opticam_widgets-{version}.dist-info"
    with zipfile.ZipFile(path, "w") as zf:
        for name in sorted(members):
            zf.writestr(name, "")
        zf.writestr(f"{info}/METADATA", f"Metadata-Version: 2.4\nName: opticam-widgets\n"
                    f"Version: {version}\nLicense-Expression: {license}\nLicense-File: LICENSE\n")
        zf.writestr(f"{info}/entry_points.txt",
                    "[console_scripts]\nopticam = opticam_widgets.cli:main\n")
        zf.writestr(f"{info}/licenses/LICENSE", "Apache License")
    return path


def test_wheel_inspection_catches_a_missing_module(tmp_path):
    check = _checker()
    version = check.source_version(ROOT)
    members = check.expected_wheel_files(ROOT)
    assert "opticam_widgets/engine/explainer.py" in members
    assert "opticam_widgets/py.typed" in members
    assert any(m.startswith("opticam_widgets/widget/") for m in members)

    complete = _fake_wheel(tmp_path / "complete.whl", members, version)
    assert check.wheel_problems(complete, version, members) == []

    zoo = "opticam_widgets/model/zoo.py"
    partial = _fake_wheel(tmp_path / "partial.whl", members - {zoo}, version)
    assert check.wheel_problems(partial, version, members) == [f"missing {zoo}"]

    untyped = _fake_wheel(tmp_path / "untyped.whl", members - {"opticam_widgets/py.typed"},
                          version)
    assert check.wheel_problems(untyped, version, members) == ["missing opticam_widgets/py.typed"]

    mit = _fake_wheel(tmp_path / "mit.whl", members, version, license="MIT")
    assert check.wheel_problems(mit, version, members) == [
        "METADATA License-Expression 'MIT' != 'Apache-2.0'"]

    stale = _fake_wheel(tmp_path / "stale.whl", members, version)
    problems = check.wheel_problems(stale, version + ".post1", members)
    assert problems and all(p.startswith("missing opticam_widgets-") for p in problems)


def test_build_warning_filter():
    pattern = _checker().WARNING_RE
    assert pattern.search("_apply_pyprojecttoml.py:82: BuildBackendWarning: `project.license`")
    assert pattern.search("SetuptoolsDeprecationWarning: License classifiers are deprecated.")
    assert not pattern.search("warning: build_py: byte-compiling is disabled, skipping.")
