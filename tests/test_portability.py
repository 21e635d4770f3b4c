"""The suite's portability job really runs where it says (issue 25).

``make portable`` runs the numeric tests (``-m numeric``) again with oneDNN and ATen capped at
AVX2, on 1 and on 2 threads, so that a test that holds only with one CPU's float rounding fails
in CI, not on a user's laptop. These checks make the job prove its own setting: a cap that torch
ignored (a misspelt variable, a torch that reads another name) would otherwise pass silently.
On a run without the variables they skip.
"""

from __future__ import annotations

import os

import pytest
import torch

pytestmark = pytest.mark.numeric

#: What ``torch.backends.cpu.get_cpu_capability()`` reports for each ``ATEN_CPU_CAPABILITY``.
_ATEN = {"avx2": "AVX2", "default": "DEFAULT", "avx512": "AVX512"}


def test_aten_capability_is_the_one_asked_for() -> None:
    asked = os.environ.get("ATEN_CPU_CAPABILITY", "").lower()
    if not asked:
        pytest.skip("ATEN_CPU_CAPABILITY not set: torch picks the CPU's best")
    got = torch.backends.cpu.get_cpu_capability()
    assert got == _ATEN[asked], f"ATEN_CPU_CAPABILITY={asked} but torch runs {got}"


def test_onednn_isa_is_the_one_asked_for(capfd: pytest.CaptureFixture[str]) -> None:
    if not torch.backends.mkldnn.is_available():
        pytest.skip("this torch has no oneDNN")
    conv = torch.nn.Conv2d(32, 64, 3)
    with torch.no_grad(), torch.backends.mkldnn.verbose(torch.backends.mkldnn.VERBOSE_ON):
        conv(torch.randn(4, 32, 40, 40))
    lines = [ln for ln in capfd.readouterr().out.splitlines() if ",isa:" in ln]
    if not lines:
        pytest.skip("oneDNN printed no ISA line for this convolution on this build")
    isa = lines[0].split(",isa:", 1)[1]
    if os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper() == "AVX2":
        assert "AVX2" in isa and "512" not in isa and "AVX10" not in isa, isa


def test_thread_count_is_the_one_asked_for() -> None:
    asked = os.environ.get("OMP_NUM_THREADS")
    if asked is None:
        pytest.skip("OMP_NUM_THREADS not set: torch picks the core count")
    assert torch.get_num_threads() == int(asked)
