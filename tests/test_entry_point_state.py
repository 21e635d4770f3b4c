"""Every engine, metric, baseline, render and CLI entry point leaves the session as found.

And each one works inside ``torch.no_grad()`` and ``torch.inference_mode()``.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable

import numpy as np
import pytest
import torch
from tinynets import small_cnn

from opticam_widgets import OptiCAM, load_default_model, sample_image
from opticam_widgets.cli.main import main
from opticam_widgets.display import render
from opticam_widgets.evaluation.baselines import baseline_map
from opticam_widgets.evaluation.metrics import (
    deletion,
    faithfulness,
    insertion,
    masked_probabilities,
)
from opticam_widgets.inputs.preprocess import Preprocess

PRE = Preprocess(size=None)
X = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(3))
MAP = torch.rand(32, 32, generator=torch.Generator().manual_seed(4))


def _cam(net) -> OptiCAM:
    return OptiCAM(net, max_iter=3, preprocess=PRE)


def _cli(net, tmp_path) -> None:
    assert main(["explain", "sample:chelsea", "--iters", "1", "--no-progress",
                 "--out", str(tmp_path)]) == 0


ENTRY_POINTS: dict[str, Callable] = {
    "explain": lambda net, tmp: _cam(net).explain(X, target=[0, 1]),
    "explain_tol": lambda net, tmp: OptiCAM(net, max_iter=20, preprocess=PRE, tol=1e-2,
                                       patience=2, nb_premises_at_startup=2).explain(X),
    "predict": lambda net, tmp: _cam(net).predict(X),
    "layer_name": lambda net, tmp: _cam(net).layer_name,
    "channel_mean": lambda net, tmp: _cam(net).channel_mean(X),
    "faithfulness": lambda net, tmp: faithfulness(net, X, MAP, preprocess=PRE),
    "masked_probabilities": lambda net, tmp: masked_probabilities(net, X, MAP, preprocess=PRE),
    "insertion": lambda net, tmp: insertion(net, X, MAP, preprocess=PRE, steps=4),
    "deletion": lambda net, tmp: deletion(net, X, MAP, preprocess=PRE, steps=4),
    "channel-mean": lambda net, tmp: baseline_map("channel-mean", net, X, preprocess=PRE),
    "gradcam": lambda net, tmp: baseline_map("gradcam", net, X, preprocess=PRE),
    "gradcam++": lambda net, tmp: baseline_map("gradcam++", net, X, preprocess=PRE),
    "scorecam": lambda net, tmp: baseline_map("scorecam", net, X, preprocess=PRE),
    "load_default_model": lambda net, tmp: load_default_model(),
    "sample_image": lambda net, tmp: sample_image("chelsea"),
    "render": lambda net, tmp: render.to_png_bytes(render.overlay(np.zeros((4, 4, 3), np.uint8),
                                                             np.eye(4), cmap="jet")),
    "cli": _cli,
}


def _state() -> dict:
    return {
        "torch_rng": torch.get_rng_state(),
        "numpy_rng": np.random.get_state(),
        "python_rng": random.getstate(),
        "grad": torch.is_grad_enabled(),
        "inference": torch.is_inference_mode_enabled(),
        "dtype": torch.get_default_dtype(),
        "threads": torch.get_num_threads(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }


def _assert_same(before: dict, after: dict) -> None:
    assert torch.equal(before["torch_rng"], after["torch_rng"]), "torch RNG moved"
    b, a = before["numpy_rng"], after["numpy_rng"]
    assert b[0] == a[0] and np.array_equal(b[1], a[1]) and b[2:] == a[2:], "numpy RNG moved"
    assert before["python_rng"] == after["python_rng"], "python RNG moved"
    for key in ("grad", "inference", "dtype", "threads"):
        assert before[key] == after[key], key
    if before["cuda_rng"] is not None:
        assert all(torch.equal(x, y) for x, y in zip(before["cuda_rng"], after["cuda_rng"]))


MODES = {
    "plain": contextlib.nullcontext,
    "no_grad": torch.no_grad,
    "inference_mode": torch.inference_mode,
}


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("name", list(ENTRY_POINTS))
def test_entry_point_leaves_the_session_as_found(name, mode, tmp_path):
    if mode != "plain" and name in ("cli", "load_default_model", "sample_image", "render"):
        pytest.skip("no autograd inside")
    net = small_cnn()  # seeds the global RNG itself: built before the snapshot
    torch.manual_seed(1234)
    np.random.seed(1234)
    random.seed(1234)
    with MODES[mode]():
        before = _state()
        ENTRY_POINTS[name](net, tmp_path)
        after = _state()
    _assert_same(before, after)


def test_explain_inside_no_grad_and_inference_mode_gives_the_same_map():
    net = small_cnn()
    plain = _cam(net).explain(X, target=2)
    with torch.no_grad():
        quiet = _cam(net).explain(X, target=2)
    with torch.inference_mode():
        image = X.clone()  # an inference tensor
        inference = _cam(net).explain(image, target=2)
    torch.testing.assert_close(quiet.saliency, plain.saliency)
    torch.testing.assert_close(inference.saliency, plain.saliency)
    assert inference.final_score > inference.initial_score
