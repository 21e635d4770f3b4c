"""``explain_dataset`` takes the engine's settings object (or an ``OptiCAM``) and a
``RunOptions`` (issue 26); the old loose keywords give the same store."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from tinynets import tiny_cnn

from opticam_widgets import OptiCAM, OptiCAMSettings, explain_dataset
from opticam_widgets.dataset import RunOptions
from opticam_widgets.support.defaults import WIDGET_TOL

QUIET = {"num_workers": 0, "progress": False, "metrics": False}


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("photos")
    gen = torch.Generator().manual_seed(1)
    for i in range(3):
        pixels = (torch.rand(30 + i, 36, 3, generator=gen) * 255).byte().numpy()
        Image.fromarray(pixels).save(root / f"img{i}.png")
    return root


def maps(results) -> list[np.ndarray]:
    return [results.saliency(i) for i in range(len(results))]


def test_settings_and_options_objects_give_the_old_keywords_store(folder, tmp_path) -> None:
    net = tiny_cnn()
    old = explain_dataset(net, folder, tmp_path / "old", max_iter=4, batch_size=2,
                          convention="destructive", **QUIET)
    new = explain_dataset(net, folder, tmp_path / "new",
                          settings=OptiCAMSettings(max_iter=4, tol=WIDGET_TOL,
                                                   convention="destructive"),
                          options=RunOptions(batch_size=2, **QUIET))
    assert len(old) == len(new) == 3
    assert all(np.array_equal(a, b) for a, b in zip(maps(old), maps(new)))
    stored = new.settings
    assert stored["optimizer"] == "paper" and stored["max_iter"] == 4
    assert stored["convention"] == "destructive" and "schedule" not in stored


def test_an_opticam_gives_its_settings_and_layer(folder, tmp_path) -> None:
    net = tiny_cnn()
    cam = OptiCAM(net, "2", max_iter=3, nb_premises_at_startup=2)
    given = explain_dataset(net, folder, tmp_path / "cam", settings=cam, **QUIET)
    spelled = explain_dataset(net, folder, tmp_path / "kw", target_layer="2", max_iter=3,
                              nb_premises_at_startup=2, tol=None, **QUIET)
    assert given.settings["layer"] == "2" and given.settings["tol"] is None
    assert all(np.array_equal(a, b) for a, b in zip(maps(given), maps(spelled)))


def test_bad_run_arguments_are_refused_by_name(folder, tmp_path) -> None:
    net = tiny_cnn()
    with pytest.raises(TypeError, match="unknown keyword\\(s\\) iters; it takes "
                                        "OptiCAMSettings fields, RunOptions fields"):
        explain_dataset(net, folder, tmp_path / "x", iters=3)
    with pytest.raises(TypeError, match="`settings` must be an OptiCAMSettings, an OptiCAM"):
        explain_dataset(net, folder, tmp_path / "x", settings={"max_iter": 3})
    with pytest.raises(ValueError, match="`engine` must be one of 'local', 'ray'"):
        RunOptions(engine="spark")
    with pytest.raises(ValueError, match="`metrics` must be True, False, 'paper' or 'full'"):
        RunOptions(metrics=2)
    with pytest.raises(ValueError, match="`batch_size` must be >= 1"):
        explain_dataset(net, folder, tmp_path / "x", batch_size=0)
    with pytest.raises(ValueError, match="`max_iter` must be >= 1"):
        explain_dataset(net, folder, tmp_path / "x", max_iter=0)
    assert not (tmp_path / "x").exists()  # refused before anything is written
    assert RunOptions(metrics="paper").metrics is True
