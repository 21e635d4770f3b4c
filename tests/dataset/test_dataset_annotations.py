"""A region or box per dataset row from the dataset's own annotations (issue #28): a manifest's
``boxes`` / ``masks`` columns and torchvision-style ``(image, target dict)`` datasets, one row
per object, mapped through the model's resize, stored in the rows; bad annotations refused."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from targetnets import TinySegmenter, one_thread
from torch.utils.data import Dataset
from torchvision import tv_tensors

from opticam_widgets import ModelBundle, OptiCAM, explain_dataset
from opticam_widgets.dataset.fingerprint import SettingsMismatchError
from opticam_widgets.dataset.sources import open_source
from opticam_widgets.engine.targets import Annotation, Annotations, Region
from opticam_widgets.inputs.preprocess import Preprocess

H, W = 48, 64  # the photos; the model sees 32×32
SEEN = Preprocess(size=(32, 32), mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
RUN = {"max_iter": 3, "batch_size": 2, "num_workers": 0, "progress": False}
NAMES = ["background", "square", "disc"]


@pytest.fixture(autouse=True)
def _one_thread():
    with one_thread():
        yield


@pytest.fixture(scope="module")
def segmenter():
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = TinySegmenter().eval()
    return ModelBundle(net, preprocess=SEEN, labels=NAMES)


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    root = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    for k in range(2):
        Image.fromarray((rng.random((H, W, 3)) * 255).astype(np.uint8)).save(root / f"p{k}.png")
    return root


def manifest(root, rows, suffix=".csv"):
    frame = pd.DataFrame(rows)
    path = root / f"manifest{suffix}"
    if suffix == ".csv":
        frame.assign(boxes=frame["boxes"].map(json.dumps)).to_csv(path, index=False)
    else:
        frame.to_parquet(path)
    return path


@pytest.mark.numeric
def test_a_manifest_gives_one_row_per_box_mapped_through_the_resize(segmenter, photos,
                                                                    tmp_path):
    path = manifest(photos, [{"path": "p0.png", "boxes": [[32, 24, 64, 48, "square"],
                                                          [0, 0, 16, 12, 2]]},
                             {"path": "p1.png", "boxes": []}])
    table = explain_dataset(segmenter, path, tmp_path / "out", target=Annotations(),
                            **RUN).table.sort_values(["position", "rank"])
    one = table[table["position"] == 0]
    assert list(one["target"]) == [1, 2] and list(one["rank"]) == [0, 1]
    assert [list(b) for b in one["region_box"]] == [[32, 24, 64, 48], [0, 0, 16, 12]]
    assert one["region_mask"].isna().all() and one["error"].isna().all()
    assert "no annotations" in table[table["position"] == 1]["error"].iloc[0]
    # the bottom-right quarter of the 48×64 photo is (16, 16, 32, 32) of the 32×32 input
    photo = torch.from_numpy(np.array(Image.open(photos / "p0.png"))).permute(2, 0, 1) / 255
    cam = OptiCAM(segmenter, max_iter=3)
    right = cam.explain(photo, target=Region(1, box=(16, 16, 32, 32)))
    wrong = cam.explain(photo, target=Region(1, box=(16, 12, 32, 24)))  # unscaled y
    stored = float(one["original_score"].iloc[0])
    assert stored == pytest.approx(float(right.original_score[0]), abs=1e-5)
    assert abs(stored - float(wrong.original_score[0])) > 1e-3


@pytest.mark.numeric
def test_a_dataset_of_target_dicts_gives_mask_rows(segmenter, tmp_path):
    mask = np.zeros((H, W), bool)
    mask[30:46, 40:62] = True  # elsewhere than the box

    class Shapes(Dataset):
        def __len__(self):
            return 2

        def __getitem__(self, i):
            image = torch.rand(3, H, W, generator=torch.Generator().manual_seed(i))
            boxes = tv_tensors.BoundingBoxes([[8, 4, 32, 16]], format="XYWH", canvas_size=(H, W))
            return image, {"boxes": boxes, "labels": torch.tensor([1]),
                           "masks": torch.from_numpy(mask)[None]}

    source = open_source(Shapes())
    _, item = source.fetch(source.items[0])
    assert item.annotations[0].box == (8.0, 4.0, 40.0, 20.0)  # XYWH converted to corners
    table = explain_dataset(segmenter, Shapes(), tmp_path / "out", target=Annotations("mask"),
                            **RUN).table
    assert len(table) == 2 and set(table["target"]) == {1} and table["error"].isna().all()
    stored = np.array(Image.open(io.BytesIO(table["region_mask"].iloc[0]))) > 0
    assert np.array_equal(stored, mask)
    by_box = explain_dataset(segmenter, Shapes(), tmp_path / "box", target=Annotations("box"),
                             **RUN).table
    maps = [np.stack(t.sort_values("position")["map"].to_list()) for t in (table, by_box)]
    assert np.abs(maps[0] - maps[1]).max() > 1e-2  # the mask, not the box, was explained
    seen = torch.nn.functional.interpolate(torch.from_numpy(mask).float()[None, None],
                                           size=(32, 32), mode="area")[0, 0]
    image = SEEN.resize(Shapes()[0][0][None])  # what the dataset explains: the resized photo
    alone = OptiCAM(segmenter, max_iter=3).explain(image, target=Region(1, mask=seen))
    row = table[table["position"] == 0]
    assert float(row["original_score"].iloc[0]) == pytest.approx(
        float(alone.original_score[0]), abs=1e-5)
    assert np.allclose(row["map"].iloc[0], alone.low_res[0].flatten().numpy(), atol=1e-4)


def test_a_box_outside_the_photo_or_a_class_outside_the_model_is_refused(segmenter, photos,
                                                                       tmp_path):
    outside = manifest(photos, [{"path": "p0.png", "boxes": [[0, 0, 80, 10, 1]]}], ".parquet")
    with pytest.raises(ValueError, match=r"p0.png.*outside the 48×64 image.*original image"):
        explain_dataset(segmenter, outside, tmp_path / "a", target=Annotations(), **RUN)
    beyond = manifest(photos, [{"path": "p0.png", "boxes": [[0, 0, 8, 8, 7]]}])
    with pytest.raises(ValueError, match=r"out of range: the model has 3 classes.*fix the "):
        explain_dataset(segmenter, beyond, tmp_path / "b", target=Annotations(), **RUN)
    classifier = ModelBundle(torch.nn.Sequential(torch.nn.Conv2d(3, 3, 3), torch.nn.ReLU(),
                                                 torch.nn.AdaptiveAvgPool2d(1),
                                                 torch.nn.Flatten()), preprocess=SEEN)
    inside = manifest(photos, [{"path": "p0.png", "boxes": [[0, 0, 8, 8, 1]]}])
    with pytest.raises(ValueError, match="p0.png.*Region needs a segmentation output.*for a "
                                         "classifier give a class"):
        explain_dataset(classifier, inside, tmp_path / "c", target=Annotations(), **RUN)
    with pytest.raises(ValueError, match="x0 < x1"):
        Annotation(1, box=(10, 0, 5, 5))
    with pytest.raises(ValueError, match="x0, y0, x1, y1, label"):
        open_source(manifest(photos, [{"path": "p0.png", "boxes": [[0, 0, 8, 8]]}]))
    with pytest.raises(ValueError, match="Annotations explain a dataset"):
        OptiCAM(segmenter).explain(torch.rand(3, 32, 32), target=Annotations())


def test_the_annotation_mode_is_part_of_the_run(segmenter, photos, tmp_path):
    path = manifest(photos, [{"path": "p0.png", "boxes": [[0, 0, 16, 12, 1]]}])
    explain_dataset(segmenter, path, tmp_path / "out", target=Annotations(), **RUN)
    for other in (Annotations("box"), None):
        with pytest.raises(SettingsMismatchError, match="target"):
            explain_dataset(segmenter, path, tmp_path / "out", target=other, **RUN)


def test_a_detector_explains_each_annotated_box(photos, tmp_path):
    from torchvision.models.detection import fasterrcnn_mobilenet_v3_large_320_fpn

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = fasterrcnn_mobilenet_v3_large_320_fpn(num_classes=3, weights=None,
                                                    weights_backbone=None).eval()
    net.roi_heads.score_thresh = 0.0
    bundle = ModelBundle(net, preprocess={"size": None, "mean": (0, 0, 0), "std": (1, 1, 1)},
                         labels=NAMES)
    path = manifest(photos, [{"path": "p0.png", "boxes": [[4, 4, 40, 30, "disc"],
                                                          [30, 20, 64, 48, "square"]]}])
    run = {**RUN, "max_iter": 1, "metrics": False}
    table = explain_dataset(bundle, path, tmp_path / "out", target=Annotations(),
                            **run).table.sort_values("rank")
    assert list(table["target_name"]) == ["disc", "square"] and table["error"].isna().all()
    assert [list(b) for b in table["region_box"]] == [[4, 4, 40, 30], [30, 20, 64, 48]]
    assert ((table["prob"] >= 0) & (table["prob"] <= 1)).all()
    beyond = manifest(photos, [{"path": "p0.png", "boxes": [[4, 4, 40, 30, 5]]}])
    with pytest.raises(ValueError, match="out of range: the model has 3 classes"):
        explain_dataset(bundle, beyond, tmp_path / "b", target=Annotations(), **run)


def test_the_command_line_explains_a_manifests_boxes(photos, tmp_path, capsys):
    from opticam_widgets.cli.main import main

    path = manifest(photos, [{"path": "p0.png", "boxes": [[0, 0, 32, 24, "cat"],
                                                          [32, 24, 64, 48, 15]]}])
    argv = ["explain-dataset", str(path), "--out", str(tmp_path / "out"), "--target",
            "annotations:box", "--model", "torchvision:lraspp_mobilenet_v3_large:none",
            "--max-iter", "2", "--metrics", "none", "--no-progress"]
    assert main(argv) == 0
    table = pd.read_parquet(tmp_path / "out" / "rows").sort_values("rank")
    assert list(table["target_name"]) == ["cat", "person"]  # Pascal VOC's 8 and 15
    assert [list(b) for b in table["region_box"]] == [[0, 0, 32, 24], [32, 24, 64, 48]]
    assert main([*argv[:5], "annotations:polygon", *argv[6:]]) == 2
    assert "expected annotations" in capsys.readouterr().err


def test_a_wrapped_torchvision_voc_dataset_on_a_torchvision_segmenter(tmp_path):
    from torchvision.datasets import VOCDetection, wrap_dataset_for_transforms_v2

    from opticam_widgets.model.zoo import load_model

    base = tmp_path / "VOCdevkit" / "VOC2012"
    for folder in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (base / folder).mkdir(parents=True)
    pixels = (np.random.default_rng(1).random((H, W, 3)) * 255).astype(np.uint8)
    Image.fromarray(pixels).save(base / "JPEGImages" / "a.jpg")
    objects = "".join(f"<object><name>{name}</name><bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}"
                      f"</ymin><xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>"
                      for name, b in (("cat", (4, 6, 30, 40)), ("person", (34, 10, 60, 44))))
    (base / "Annotations" / "a.xml").write_text(
        f"<annotation><filename>a.jpg</filename><size><width>{W}</width><height>{H}</height>"
        f"<depth>3</depth></size>{objects}</annotation>")
    (base / "ImageSets" / "Main" / "train.txt").write_text("a\n")
    voc = wrap_dataset_for_transforms_v2(VOCDetection(str(tmp_path), image_set="train"))
    table = explain_dataset(load_model("torchvision:lraspp_mobilenet_v3_large:none"), voc,
                            tmp_path / "out", target=Annotations(), max_iter=2, metrics=False,
                            num_workers=0, progress=False).table.sort_values("rank")
    assert list(table["target_name"]) == ["cat", "person"] and table["error"].isna().all()
    assert [list(b) for b in table["region_box"]] == [[4, 6, 30, 40], [34, 10, 60, 44]]
