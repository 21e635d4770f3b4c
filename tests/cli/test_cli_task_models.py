"""The CLI on torchvision detectors and segmenters (issue #28): ``--model
torchvision:NAME:none`` (random weights, offline) or ``:PATH`` (a local weights file) explains
``region:`` and ``box:`` targets end to end; each target changes the map."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from opticam_widgets.cli.main import main
from opticam_widgets.engine.targets import Detected
from opticam_widgets.model.zoo import load_model

SEG = "torchvision:lraspp_mobilenet_v3_large:none"
DET = "fasterrcnn_mobilenet_v3_large_320_fpn"
H, W = 48, 64


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    path = tmp_path_factory.mktemp("photo") / "img.png"
    pixels = np.random.default_rng(0).random((H, W, 3))
    Image.fromarray((pixels * 255).astype(np.uint8)).save(path)
    return path


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def explain(photo, out, model, target):
    argv = ["explain", str(photo), "--model", model, "--target", target, "--max-iter", "4",
            "--out", str(out), "--no-progress"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a random net's flat score warns
        assert main(argv) == 0
    [npy] = sorted(out.glob("*.npy"))
    assert npy.with_suffix(".png").is_file()
    return np.load(npy)


@pytest.mark.numeric
def test_a_segmenter_explains_a_region_and_another_region_changes_the_map(photo, tmp_path):
    left = explain(photo, tmp_path / "a", SEG, "region:1:0,0,32,24")
    right = explain(photo, tmp_path / "b", SEG, "region:1:32,24,64,48")
    assert left.shape == right.shape == (H, W) and left.dtype == np.float32
    assert np.abs(left - right).max() > 1e-3  # measured 0.74


@pytest.fixture(scope="module")
def detector_file(tmp_path_factory):
    """Random weights with a sharper head (its scores vary with the image), as a local file."""
    net = load_model(f"torchvision:{DET}:none").model
    state = net.state_dict()
    state["roi_heads.box_predictor.cls_score.weight"] *= 300
    state["roi_heads.box_predictor.bbox_pred.weight"] *= 100
    path = tmp_path_factory.mktemp("weights") / "detector.pth"
    torch.save(state, path)
    return path


@pytest.mark.numeric
def test_a_detector_from_a_local_file_explains_a_box_and_another_box_changes_it(
        photo, detector_file, tmp_path):
    bundle = load_model(f"torchvision:{DET}:{detector_file}")
    pixels = torch.from_numpy(np.array(Image.open(photo))).permute(2, 0, 1)[None] / 255
    with torch.no_grad():
        out = bundle.model(pixels)
    first, second = (Detected(rank).resolve(out) for rank in (0, 1))
    maps = []
    for k, rows in enumerate((first, second)):
        box = ",".join(f"{v:.3f}" for v in rows.boxes[0].tolist())
        target = f"box:{box}:{int(rows.classes[0])}"
        maps.append(explain(photo, tmp_path / str(k), f"torchvision:{DET}:{detector_file}",
                            target))
    assert maps[0].shape == maps[1].shape == (H, W)
    assert np.abs(maps[0] - maps[1]).max() > 1e-3  # measured 0.012


def test_a_box_outside_the_photo_and_a_bad_weights_file_are_refused(photo, tmp_path, capsys):
    argv = ["explain", str(photo), "--model", SEG, "--target", "region:1:0,0,99,24",
            "--out", str(tmp_path), "--max-iter", "1", "--no-progress"]
    assert main(argv) == 2
    assert "not inside the 48×64 image" in capsys.readouterr().err
    bad = tmp_path / "other.pth"
    torch.save(torch.nn.Linear(2, 2).state_dict(), bad)
    argv[3] = f"torchvision:{DET}:{bad}"
    assert main(argv) == 2
    assert "does not fit FasterRCNN" in capsys.readouterr().err
