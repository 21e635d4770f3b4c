"""Zoo and image entry points leave the session: global RNGs, grad mode, default dtype, threads."""

from __future__ import annotations

import random
import subprocess
import sys
import textwrap
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

from opticam_widgets.inputs.images import as_image_batch, to_image_tensor
from opticam_widgets.inputs.preprocess import coerce_preprocess
from opticam_widgets.model import zoo


def session() -> tuple:
    """Everything a call must leave as it found it."""
    return (torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate(),
            torch.is_grad_enabled(), torch.get_default_dtype(), torch.get_num_threads())


def assert_same_session(before: tuple, after: tuple) -> None:
    assert torch.equal(before[0], after[0]), "torch's global RNG moved"
    assert np.array_equal(before[1], after[1]), "numpy's global RNG moved"
    assert before[2] == after[2], "python's `random` moved"
    assert before[3:] == after[3:], "grad mode, default dtype or thread count changed"


ENTRY_POINTS: dict[str, Callable[[], Any]] = {
    "load_default_model": zoo.load_default_model,
    "load_model": lambda: zoo.load_model("torchvision:resnet18:none"),
    "from_torchvision": lambda: zoo.from_torchvision("mobilenet_v3_small", weights=None),
    "imagenet_labels": zoo.imagenet_labels,
    "sample_image": lambda: zoo.sample_image("coffee"),
    "sample_images": zoo.sample_images,
    "to_image_tensor": lambda: to_image_tensor(zoo.sample_image("camera")),
    "as_image_batch": lambda: as_image_batch([np.zeros((4, 4, 3), np.uint8)] * 2),
    "coerce_preprocess": lambda: coerce_preprocess({"input_size": (3, 32, 32), "mean": (0,) * 3,
                                                    "std": (1,) * 3}),
}


@pytest.mark.parametrize("name", sorted(ENTRY_POINTS))
@pytest.mark.parametrize("grad", [True, False])
def test_entry_points_leave_the_session_as_they_found_it(name, grad):
    torch.manual_seed(1234)
    np.random.seed(99)
    random.seed(7)
    with torch.set_grad_enabled(grad):
        before = session()
        ENTRY_POINTS[name]()
        assert_same_session(before, session())


def test_first_load_of_the_default_model_keeps_the_users_seed_and_dtype():
    """In a fresh process: building the model (random init, then the weights) draws nothing
    from the user's RNG, and a float64 default dtype still gives the float32 model."""
    code = textwrap.dedent("""
        import torch
        from opticam_widgets.model.zoo import load_default_model
        torch.set_default_dtype(torch.float64)
        torch.manual_seed(0)
        expected = torch.rand(3)
        torch.manual_seed(0)
        model = load_default_model().model
        assert torch.equal(torch.rand(3), expected), "the default model consumed the torch RNG"
        assert torch.get_default_dtype() == torch.float64
        assert {p.dtype for p in model.parameters()} == {torch.float32}
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "ok"
