"""Dataset runs with targets beyond a class (issue #28): a multi-label head (a row per label
over 0.5, its sigmoid probability) and a segmentation region (a row per image)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from targetnets import TinySegmenter, multilabel_scene, one_thread, seeded, train_multilabel

from opticam_widgets import ModelBundle, explain_dataset
from opticam_widgets.engine.targets import MultiLabel, Region
from opticam_widgets.inputs.preprocess import Preprocess

PLAIN = Preprocess(size=None, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
SETTINGS = {"max_iter": 3, "batch_size": 4, "num_workers": 0, "progress": False}


def write(images: list[torch.Tensor], root: Path) -> list[str]:
    root.mkdir(parents=True, exist_ok=True)
    paths = []
    for k, img in enumerate(images):
        path = root / f"img{k}.png"
        Image.fromarray((img.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(path)
        paths.append(str(path))
    return paths


@pytest.fixture(autouse=True)
def _one_thread():
    with one_thread():
        yield


def test_multilabel_rows_are_the_labels_over_a_half(tmp_path):
    net = train_multilabel()
    with seeded(3) as gen:
        scenes = [multilabel_scene(gen, present) for present in ((True, True), (False, True))]
    paths = write([s[0] for s in scenes], tmp_path / "photos")
    table = explain_dataset(ModelBundle(net, preprocess=PLAIN), paths, tmp_path / "out",
                            target=MultiLabel(), **SETTINGS).table.sort_values(["position",
                                                                                "rank"])
    assert [sorted(g) for _, g in table.groupby("position")["target"]] == [[0, 1], [1]]
    logits = net(torch.stack([s[0] for s in scenes]))
    expected = [float(torch.sigmoid(logits[p, t])) for p, t in zip(table["position"],
                                                                    table["target"])]
    assert np.allclose(table["prob"], expected, atol=1e-3)  # PNG rounding of the pixels


def test_region_rows_one_per_image(tmp_path):
    torch.manual_seed(0)
    net = TinySegmenter().eval()
    paths = write([torch.rand(3, 32, 32) for _ in range(3)], tmp_path / "photos")
    table = explain_dataset(ModelBundle(net, preprocess=PLAIN), paths, tmp_path / "out",
                            target=Region(1, box=(0, 0, 16, 16)), **SETTINGS).table
    assert len(table) == 3 and set(table["target"]) == {1} and table["error"].isna().all()
    assert ((table["prob"] > 0) & (table["prob"] < 1)).all()
