"""Write the tutorial notebooks from this source, then execute them in place.

Usage: .venv/bin/python tools/build_notebooks.py [name ...] && (re-)execute with nbconvert.
Cells whose source starts with ``# NBVAL_CHECK_OUTPUT`` are compared by nbval even in lax mode:
print only rounded, machine-independent facts there.

Every notebook written here carries no saved widget state (``metadata.widgets``): that state is
stale the moment the kernel that made it is gone, and, trusted, it draws a dead widget with a
blank canvas instead of the saved picture. After executing with nbconvert, run
``tools/build_notebooks.py --strip`` to remove it again from every notebook (nothing else is
touched; ``tests/test_notebooks_clean.py`` checks it).
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat as nbf

HERE = Path(__file__).resolve().parents[1] / "notebooks"
KERNEL = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}


def md(text: str) -> nbf.NotebookNode:
    return nbf.v4.new_markdown_cell(text.strip())


def code(text: str) -> nbf.NotebookNode:
    return nbf.v4.new_code_cell(text.strip())


QUICKSTART = [
    md("""
# Opti-CAM quickstart: why does the model say *cat*?

**Opti-CAM** (Zhang et al., [arXiv 2301.07002](https://arxiv.org/abs/2301.07002)) builds a
saliency map as a weighted sum of a CNN's feature maps and *optimizes the weights* so that the
image, masked by the map, keeps the model's score for the class. The map shows what the model
needs to see.

This notebook runs offline on the embedded default model, an **EfficientNet-Lite0** trained on
ImageNet, and a photo that ships with scikit-image. One line gives the whole tool:
"""),
    code("""
from opticam_widgets import OptiCAMWidget, load_default_model, sample_image

widget = OptiCAMWidget(load_default_model()).show(sample_image("chelsea"))
"""),
    md("""
## What the controls do

* **Class**: the model's top-5 predictions with their probabilities. Pick one to explain it;
  type in the search box to explain any of the 1000 ImageNet classes.
* **Iterations** and **learning rate**: how long and how fast Adam optimizes the channel
  weights. Press **Run** after changing them (sliders don't restart a run on every tick).
* **Convention**: *constructive* keeps the class score of the image masked by the map;
  *destructive* removes the score by masking the map out. Both maps mark what matters.
* **Opacity**, **colormap** and **view** (overlay, saliency only, the masked input the model
  saw, the original): these redraw at once, without optimizing again.
* **Stop** ends a run within one iteration; the map stays the best one found so far.
* The map appears at iteration 0 (the channel-mean map) and refines live; the plot shows the
  score of the masked image at each iteration.

The optimization runs in a background thread: the notebook stays usable meanwhile, and
**Run All** shows the map refining live. So no cell below waits for the run: a cell that
waits (`widget.wait()`) would hold the kernel, and the widget above would stop refining on
screen until it returns. In a script, `widget.wait()` is what you want.

**Your own photo**: press **Open photos…** (several at once) or drop photos on the widget, or
give a path, a list or a folder: `widget.show("photos/")`.
"""),
    code("""
# NBVAL_CHECK_OUTPUT
print("explained class:", widget.labels[widget.target])
print("photo:", widget.images[0].rgb.shape)
"""),
    md("""
## Reading the result

`widget.result` is an `OptiCAMResult` (live during a run): the map (`saliency`, values in
[0, 1] at the photo's own resolution), the channel weights, the score history, and the scores
of the original, the iteration-0 and the final masked image. `widget.saliency` is the current
map as a NumPy array. Run the next cell again once the status line says the run has ended.
"""),
    code("""
r = widget.result
if widget.running or r is None:
    print("still optimizing: run this cell again when the status line says it has ended")
else:
    print("map shape:", tuple(r.saliency.shape), "in [0, 1]:",
          bool(r.saliency.min() >= 0 and r.saliency.max() <= 1))
    print("target layer:", r.layer, "· iterations run:", r.iterations)
    print("saliency array:", widget.saliency.shape, widget.saliency.dtype)
"""),
    md("""
`widget.figure()` gives a matplotlib figure of the image, the map, the overlay and the score
curve, ready for a report; `widget.save("chelsea.png")` writes the overlay as a PNG (never over
an existing file), and **Download** and **Code** under the canvas give the PNG with its
settings and the code that reproduces the map.
"""),
    md("""
## Several images

Give a list (or a dict of named photos) to get an image selector; each image keeps its own
predictions and results.
"""),
    code("""
gallery = OptiCAMWidget.default().show(
    {"coffee": sample_image("coffee"), "astronaut": sample_image("astronaut")}, run=False)
"""),
    md("""
Next: `02_headless_api.ipynb` (the API without a UI), `03_your_own_model.ipynb` (train a small
CNN and explain it), `04_torchvision_models.ipynb` (any torchvision or timm CNN).
"""),
]


HEADLESS = [
    md("""
# The headless API: `OptiCAM.explain`

The widget is a thin layer over `OptiCAM`, which you can use in scripts and pipelines.
Everything here runs offline on the embedded EfficientNet-Lite0.
"""),
    code("""
import matplotlib.pyplot as plt
import torch

from opticam_widgets import OptiCAM, load_default_model, sample_image
from opticam_widgets.display.render import overlay

torch.manual_seed(0)
bundle = load_default_model()
labels = bundle.labels
image = sample_image("coffee")
cam = OptiCAM(bundle)  # preprocessing (224x224, mean = std = 0.5) comes with the bundle
"""),
    code("""
# NBVAL_CHECK_OUTPUT
probs = cam.predict(image)[0]
top = probs.topk(3)
for p, c in zip(top.values, top.indices):
    print(f"{labels[c]:>12s}  {p:.1f}")
"""),
    md("""
## Constructive vs destructive

*Constructive* (default, the paper's choice) maximizes the class logit of the image masked by
the map, `x ⊙ S`. *Destructive* minimizes the logit of `x ⊙ (1 − S)`: the map marks what,
removed, destroys the prediction. Both return a map where high values matter.
"""),
    code("""
# NBVAL_CHECK_OUTPUT
cons = cam.explain(image, max_iter=40)
dest = cam.explain(image, max_iter=40, convention="destructive")
print("class:", labels[cons.target[0]])
print("constructive raises the masked score:", bool(cons.final_score > cons.initial_score))
print("destructive lowers the score of the rest:", bool(dest.final_score < dest.initial_score))
"""),
    code("""
fig, axes = plt.subplots(1, 3, figsize=(12, 4))
axes[0].imshow(image); axes[0].set_title("image")
axes[1].imshow(overlay(image, cons.numpy()[0])); axes[1].set_title("constructive")
axes[2].imshow(overlay(image, dest.numpy()[0])); axes[2].set_title("destructive")
for ax in axes:
    ax.axis("off")
"""),
    md("""
## Several classes of one image, in one batch

A list of classes for one image explains them together (one batch, one optimization).
"""),
    code("""
# NBVAL_CHECK_OUTPUT
astronaut = sample_image("astronaut")
top3 = cam.predict(astronaut)[0].topk(3).indices.tolist()
many = cam.explain(astronaut, target=top3, max_iter=30)
print("rows:", len(many), "targets are the top 3:", list(many.target) == top3)
"""),
    code("""
fig, axes = plt.subplots(1, 3, figsize=(12, 4))
for ax, s, c in zip(axes, many.numpy(), many.target):
    ax.imshow(overlay(astronaut, s)); ax.set_title(labels[c]); ax.axis("off")
"""),
    md("""
## Several trajectories

`nb_premises_at_startup=P` starts P independent optimizations per image and class (the first
from equal weights, the others from seeded random weights) in one batch and keeps the best.
"""),
    code("""
# NBVAL_CHECK_OUTPUT
best_of_3 = OptiCAM(bundle, nb_premises_at_startup=3).explain(image, max_iter=30)
single = cam.explain(image, max_iter=30)
print("best of 3 >= single trajectory:",
      bool(best_of_3.final_score >= single.final_score - 1e-3))
"""),
    md("""
## Iteration 0 vs the optimized map

With equal weights, the map is the mean of the feature maps (the "channel-mean CAM"). The
callback sees every step; `progress.result()` materializes the map at that step.
"""),
    code("""
# NBVAL_CHECK_OUTPUT
first = {}

def keep_first(step, progress):
    if step == 0:
        first["result"] = progress.result()

optimized = cam.explain(image, max_iter=40, callback=keep_first)
s0 = first["result"].final_score.item()
print("optimized map scores higher than the channel-mean map:",
      optimized.final_score.item() > s0)
"""),
    code("""
fig, axes = plt.subplots(1, 4, figsize=(16, 4))
axes[0].imshow(overlay(image, first["result"].numpy()[0])); axes[0].set_title("iteration 0")
axes[1].imshow(overlay(image, optimized.numpy()[0])); axes[1].set_title("optimized")
axes[2].imshow(optimized.masked_input()[0].permute(1, 2, 0)); axes[2].set_title("x ⊙ S")
axes[3].plot(optimized.scores[0]); axes[3].set_title("masked logit per iteration")
for ax in axes[:3]:
    ax.axis("off")
"""),
    md("""
## The masked input and the numbers

`masked_input()` is what the model saw (`x ⊙ S`, in pixel space: masked pixels go black, the
paper's baseline). `original_score`, `initial_score` and `final_score` are logits (or
probabilities with `score="probability"`).
"""),
    code("""
# NBVAL_CHECK_OUTPUT
print("masked input shape:", tuple(optimized.masked_input().shape))
print("scores recorded per iteration:", optimized.scores.shape[1] == optimized.iterations + 1)
"""),
]


OWN_MODEL = [
    md("""
# Your own model: train a small CNN, then check that Opti-CAM points at the object

We make a synthetic data set (a square, a disk or a cross, at a random place on a noisy
background), train a small CNN on it for a few seconds, and ask Opti-CAM where the evidence
is. Because we know where each shape is, we can score the maps with the **pointing game**: is
the map's maximum inside the shape's box?
"""),
    code("""
import numpy as np
import torch
from torch import nn

from opticam_widgets import OptiCAM, Preprocess

torch.manual_seed(0)
rng = np.random.default_rng(0)
SIZE, CLASSES = 48, ("square", "disk", "cross")


def make_sample(label):
    img = rng.uniform(0.0, 0.25, size=(SIZE, SIZE, 3)).astype(np.float32)
    r = int(rng.integers(6, 10))
    cy, cx = rng.integers(r, SIZE - r, size=2)
    yy, xx = np.mgrid[:SIZE, :SIZE]
    if label == 0:
        mask = (abs(yy - cy) <= r) & (abs(xx - cx) <= r)
    elif label == 1:
        mask = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
    else:
        mask = ((abs(yy - cy) <= r) & (abs(xx - cx) <= 2)) | ((abs(xx - cx) <= r) & (abs(yy - cy) <= 2))
    img[mask] = rng.uniform(0.6, 1.0, size=3)
    return img, (cy - r, cy + r, cx - r, cx + r)


def make_set(n):
    labels = rng.integers(0, len(CLASSES), size=n)
    pairs = [make_sample(int(c)) for c in labels]
    x = torch.tensor(np.stack([p[0] for p in pairs])).permute(0, 3, 1, 2)
    return x, torch.tensor(labels), [p[1] for p in pairs]


x_train, y_train, _ = make_set(1200)
x_test, y_test, boxes = make_set(40)
x_train.shape
"""),
    code("""
model = nn.Sequential(
    nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
    nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
    nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(),
    nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, len(CLASSES)),
)
opt = torch.optim.Adam(model.parameters(), lr=3e-3)
for epoch in range(10):
    for i in torch.randperm(len(x_train)).split(64):
        loss = nn.functional.cross_entropy(model(x_train[i]), y_train[i])
        opt.zero_grad(); loss.backward(); opt.step()
model.eval()
"""),
    code("""
# NBVAL_CHECK_OUTPUT
with torch.no_grad():
    accuracy = (model(x_test).argmax(1) == y_test).float().mean().item()
print("test accuracy above 90%:", accuracy > 0.9)
"""),
    md("""
## Explain it

Our model takes pixels in [0, 1] at their own size: tell Opti-CAM with a `Preprocess` (no
resize, identity normalization). The target layer is found automatically: the last spatial
feature map before global pooling (here the last ReLU, `"7"`).
"""),
    code("""
# NBVAL_CHECK_OUTPUT
cam = OptiCAM(model, preprocess=Preprocess(size=None, mean=(0, 0, 0), std=(1, 1, 1)),
              max_iter=50, lr=0.1)
result = cam.explain(x_test, target=y_test.tolist())
print("target layer:", result.layer)
print("maps:", tuple(result.saliency.shape))
"""),
    code("""
# NBVAL_CHECK_OUTPUT
def pointing_hit(saliency, box, tolerance=2):
    y, x = np.unravel_index(int(saliency.argmax()), saliency.shape)
    y0, y1, x0, x1 = box
    return (y0 - tolerance <= y <= y1 + tolerance) and (x0 - tolerance <= x <= x1 + tolerance)

hits = [pointing_hit(s, b) for s, b in zip(result.numpy(), boxes)]
score = float(np.mean(hits))
print(f"pointing game over {len(hits)} images: above 80%:", score > 0.8)
"""),
    code("""
import matplotlib.pyplot as plt
from opticam_widgets.display.render import overlay

fig, axes = plt.subplots(2, 6, figsize=(15, 5))
for i in range(6):
    img = x_test[i].permute(1, 2, 0).numpy()
    axes[0, i].imshow(img); axes[0, i].set_title(CLASSES[int(y_test[i])])
    axes[1, i].imshow(overlay(img, result.numpy()[i]))
for ax in axes.flat:
    ax.axis("off")
"""),
    md("""
The same model works in the widget: `OptiCAMWidget(model, preprocess=..., labels=list(CLASSES))`.
"""),
]


TORCHVISION = [
    md("""
# Torchvision, timm and any other CNN

`from_torchvision(name)` builds a torchvision classifier together with its weights' own
preprocessing and class names. Weights are **downloaded** on first use (then cached): this is
the only part of the package that uses the network, and only when you ask for it. The cells
below say so and skip themselves cleanly when you are offline.
"""),
    code("""
import torch

from opticam_widgets import OptiCAM, Preprocess, from_torchvision, sample_image
from opticam_widgets.model.zoo import ModelDownloadError

image = sample_image("chelsea")
try:
    bundle = from_torchvision("resnet50")  # opt-in download of ImageNet weights
except ModelDownloadError as exc:
    bundle = None
    print("offline: skipping the pretrained torchvision example")
"""),
    code("""
if bundle is not None:
    cam = OptiCAM(bundle)
    result = cam.explain(image, max_iter=50)
    print(bundle.labels[result.target[0]], "explained on", result.layer)
else:
    print("offline: nothing to explain here")
"""),
    md("""
## Any CNN, offline

A model with random weights is enough to see how to point Opti-CAM at your own network:
choose the target layer (a module or its dotted name), the preprocessing, and the labels.
"""),
    code("""
# NBVAL_CHECK_OUTPUT
from torchvision.models import resnet18

torch.manual_seed(0)
model = resnet18(num_classes=10).eval()
print("auto-detected layer:", OptiCAM(model).layer_name)
cam = OptiCAM(model, target_layer="layer3",
              preprocess=Preprocess(size=(160, 160)),  # ImageNet mean/std by default
              max_iter=10)
result = cam.explain(image, target=3)
print("layer:", result.layer, "| channels:", result.weights.shape[1],
      "| map:", tuple(result.saliency.shape))
"""),
    code("""
# NBVAL_CHECK_OUTPUT
import timm

net = timm.create_model("resnet18", pretrained=False, num_classes=5).eval()
print("timm resnet18 layer:", OptiCAM(net).layer_name)
net = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=5).eval()
print("timm efficientnet-lite0 layer:", OptiCAM(net).layer_name)
"""),
    md("""
## Vision transformers, Swin, ConvNeXt and Hugging Face models

Opti-CAM needs spatial feature maps (B, C, h, w). A vision transformer gives tokens (B, N, C):
a class token (DeiT adds a distillation token, some models register tokens), then the patch
grid. Swin gives channels-last maps (B, h, w, C). The target layer is detected the same way as
for a CNN, and its output is turned into maps: the leading tokens are dropped and the patches
laid out on their grid (read from the model's patch size and `num_prefix_tokens`, or from the
input's shape), channels-last maps are permuted. The detected layer is the **last block's
output** (`blocks` for a timm ViT), never a tensor inside attention nor the final norm.
"""),
    code("""
# NBVAL_CHECK_OUTPUT
for arch, kwargs in [("vit_tiny_patch16_224", {}), ("deit_tiny_distilled_patch16_224", {}),
                     ("swin_tiny_patch4_window7_224", {}), ("convnext_atto", {})]:
    torch.manual_seed(0)
    net = timm.create_model(arch, pretrained=False, num_classes=5, **kwargs).eval()
    result = OptiCAM(net, max_iter=3).explain(image, target=0)
    print(f"{arch}: layer {result.layer!r}, {result.weights.shape[1]} channels,",
          "map", tuple(result.saliency.shape))
"""),
    md("""
Hugging Face `transformers` image classifiers return a `ModelOutput`; Opti-CAM reads its
`.logits` (a dict with `"logits"`, or a tuple whose first item is the logits, works too). Here a
tiny ViT built from a config, with random weights (no download):
"""),
    code("""
try:
    from transformers import ViTConfig, ViTForImageClassification
except ImportError:
    print("transformers is not installed: pip install transformers")
else:
    torch.manual_seed(0)
    config = ViTConfig(image_size=64, patch_size=8, hidden_size=64, num_hidden_layers=2,
                       num_attention_heads=2, intermediate_size=128, num_labels=5)
    hf = ViTForImageClassification(config).eval()
    result = OptiCAM(hf, preprocess=Preprocess(size=(64, 64), mean=(0.5,) * 3, std=(0.5,) * 3),
                     max_iter=3).explain(image, target=0)
    print("layer:", result.layer, "| map:", tuple(result.saliency.shape))
"""),
    md("""
For an unusual model, name the layer and its layout: `OptiCAM(model, target_layer="blocks.5",
reshape="tokens")` (or `"nhwc"`, `"nchw"`), or give a callable that turns the layer's output
into (B, C, h, w): `reshape=lambda t: t[:, 1:].reshape(len(t), 14, 14, -1).permute(0, 3, 1, 2)`.
A model with no spatial layer at all is refused with a message that says so.
"""),
    code("""
# NBVAL_CHECK_OUTPUT
torch.manual_seed(0)
vit = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=5).eval()
cam = OptiCAM(vit, target_layer="blocks.5", reshape="tokens", max_iter=3)
print("explicit layer:", cam.explain(image, target=0).layer)
"""),
    md("""
In the widget: `OptiCAMWidget(model, labels=[...], preprocess=Preprocess(...),
target_layer="layer3")`, or `OptiCAMWidget(from_torchvision("resnet50"))` with a bundle.
"""),
]

DASHBOARD = [
    md("""
# Opti-CAM: why does the model say what it says?

Pick a photo and a class: the map shows what the model needs to see to keep its score for that
class (Opti-CAM, Zhang et al., [arXiv 2301.07002](https://arxiv.org/abs/2301.07002)). It appears
at once and refines live while the weights are optimized; the plot follows the score of the
masked image. Model: EfficientNet-Lite0 (ImageNet), offline.

**Your own photos**: press **Open photos…** (several at once), or drop photos on the app. Every
control works from the keyboard (Tab, arrows; ←/→ on *Image* step through the photos).
"""),
    code("""
from opticam_widgets import sample_image
from opticam_widgets.widget import AppLoader

photos = {"cat": sample_image("chelsea"), "coffee": sample_image("coffee"),
          "astronaut": sample_image("astronaut"), "rocket": sample_image("rocket")}
# the first photo and a progress line on screen now, while the next cell loads the model
app = AppLoader(photos, start=False)
app
"""),
    code("""
# the model, then the live widget in the photo's place; it explains once a page shows it, so
# the map refines on screen (nothing here waits for the run: the page stays responsive)
widget = app.load_here()
"""),
]

DATASET = [
    md("""
# Explain a whole dataset: `explain_dataset`, the Parquet store, the paper's table

`OptiCAM.explain` explains a batch in memory. `explain_dataset` explains a **folder** (or a list
of paths, a torch `Dataset`, any iterable of images): a `DataLoader` decodes and resizes the
photos, each (image, class) row is optimized on its own and stops on its own plateau (so its
map is the one `OptiCAM.explain` gives for that photo, whatever its batch), and the rows reach
**Parquet shards** on disk at least every minute. Interrupt it (Ctrl-C, `kill`, a lost SSH
session) and run it again: it resumes where it stopped. `engine="ray"` runs the same thing on
Ray Data (a laptop, a multi-GPU node or a cluster) and writes the same files.

Here: the sample photos, cropped and mirrored into 24 images, in an ImageFolder layout (class
subfolders give the true labels, matched to the model's ImageNet names).
"""),
    code("""
import tempfile
from pathlib import Path

from opticam_widgets import explain_dataset, load_default_model, sample_images

bundle = load_default_model()
root = Path(tempfile.mkdtemp(prefix="opticam-dataset-"))
folders = {"chelsea": "Egyptian_cat", "coffee": "espresso", "camera": "tripod"}
for name, img in sample_images().items():
    folder = root / "photos" / folders.get(name, "other")
    folder.mkdir(parents=True, exist_ok=True)
    w, h = img.size
    img.save(folder / f"{name}.jpg")
    img.crop((w // 5, h // 5, w - w // 5, h - h // 5)).save(folder / f"{name}_crop.jpg")
    img.transpose(0).save(folder / f"{name}_mirror.jpg")
print(len(list((root / "photos").rglob("*.jpg"))), "images")
"""),
    md("""
## Run

`max_iter=30` keeps this notebook quick (the paper uses 100); `tol` lets each image stop on its
plateau. The progress bar shows images/s and the time left.
"""),
    code("""
# NBVAL_CHECK_OUTPUT
results = explain_dataset(bundle, root / "photos", root / "results", max_iter=30,
                          batch_size=8, progress=False)
t = results.table
print(len(t), "rows,", t["id"].nunique(), "images,", len(results.errors), "errors")
print("class folders:", sorted(t["true_name"].unique()))
print("matched to the model's labels:", sorted(t["true_name"][t["true_label"].notna()].unique()))
"""),
    md("""
## The table

One row per (image, class): the true label, the prediction, the class explained, the score of
the masked image at iteration 0 and at the end, the iterations each row ran, the probability
of the class on the image (`prob`, *p*) and on the image masked by its map (`masked_prob`, *o*),
and this image's terms of the paper's metrics: `drop` (Average Drop), `increase` and `gain`.
The store also keeps the channel weights, the map at the features' resolution and the photo's
size, so that `results.saliency(row)` rebuilds the full-resolution map exactly.
"""),
    code("""
cols = ["id", "true_name", "predicted_name", "correct", "prob", "masked_prob", "drop", "gain",
        "iterations"]
t[cols].round(3).head(10)
"""),
    md("""
## The paper's table

AD ↓, AI ↑ and AG ↑ (%) over the whole set and per explained class, computed with the
functions of `opticam_widgets.evaluation.metrics` on the stored probabilities.
"""),
    code("""
results.summary().round(1)
"""),
    md("""
## Worst and best cases

Worst: the images whose masked probability dropped most; best: the largest gains. The
histograms show the distribution of the drop and of the score gained by the optimization.
"""),
    code("""
%matplotlib inline

results.figure(n=4)  # a matplotlib Figure: distributions, worst and best maps
"""),
    md("""
## A map at full resolution

The store holds each map at the features' resolution (7 × 7 here); bilinear upsampling commutes
with Opti-CAM's min-max normalisation, so the map at the photo's size is rebuilt exactly: it is
the map `OptiCAM.explain` gives for that photo (bit for bit with the default
`batching="independent"`).
"""),
    code("""
# NBVAL_CHECK_OUTPUT
import matplotlib.pyplot as plt

worst = t["drop"].idxmax()
saliency = results.saliency(worst)
print("map at the photo's size:", saliency.shape == results.image(worst).shape[:2],
      "range", round(float(saliency.min()), 3), round(float(saliency.max()), 3))
fig, ax = plt.subplots(figsize=(5, 4))
ax.imshow(results.overlay(worst, full=True))
ax.set_title(f"{t.loc[worst, 'id']}: {t.loc[worst, 'target_name']}")
ax.set_axis_off()
"""),
    md("""
## Without this package

The rows are plain Parquet files in `results/rows/`, a folder that holds nothing else (the
run's settings and lock sit beside it in `results/`): pandas, DuckDB, Polars and Ray all read
that one path directly.
"""),
    code("""
# NBVAL_CHECK_OUTPUT
import pandas as pd
import polars as pl  # in the test extra; `pip install polars`

rows = root / "results" / "rows"
frame = pd.read_parquet(rows)
print(len(frame), "rows;", "columns include", [c for c in ("weights", "map") if c in frame])
print("Polars reads the same folder:", pl.read_parquet(rows).height, "rows")
"""),
    code("""
import duckdb  # in the test extra; `pip install duckdb`

duckdb.sql(f\"\"\"select target_name, count(*) as n, round(avg(drop), 1) as mean_drop
              from read_parquet('{rows}') where error is null
              group by target_name order by n desc, target_name limit 5\"\"\").df()
"""),
    md("""
## Resume, the command line, Ray

Running the same call again skips what is stored (`resume=True`, the default):
"""),
    code("""
# NBVAL_CHECK_OUTPUT
again = explain_dataset(bundle, root / "photos", root / "results", max_iter=30, batch_size=8,
                        progress=False)
print(len(again.table), "rows, no duplicates:", again.table["id"].is_unique)
"""),
    md("""
From a shell: `opticam explain-dataset photos/ --out results/ --batch-size 16 --iters 100`
then `opticam report results/` (a Markdown table and PNG figures). `engine="ray"` (or
`--engine ray`; `pip install opticam-widgets[ray]`) runs the batches in a Ray Data actor pool:
one model per actor, one GPU per actor where there are GPUs, on a local instance or the cluster
of `RAY_ADDRESS`.
"""),
    md("""
## Browse the maps: `OptiCAMExplorer`

A grid of the maps over their images, page by page (only the page shown is drawn, from the
store: 10,000 rows stay fast), with filters: true and predicted class (type to search the
names), right / wrong, confidence, faithfulness (each image's drop or gain); a sort; the
paper's AD / AI / AG of the selection with a small plot. **Click a thumbnail**: with `model=`
it opens in a live `OptiCAMWidget` (sliders, class selector, compare, export), without it the
stored map, large. **Export** the selection as a CSV of ids or a PNG contact sheet.
"""),
    code("""
from opticam_widgets import OptiCAMExplorer

explorer = OptiCAMExplorer(results, model=bundle).show()
"""),
    md("""
The controls are plain widgets: click them, or set them from code. The worst maps first
(`explorer.controls.correctness.value = "wrong"` keeps the wrong predictions):
"""),
    code("""
explorer.controls.sort.value = "drop"
explorer.controls.descending.value = True
s = explorer.summary()
print(s["rows"], "rows selected · AD", round(s["AD"], 1), "% · AG", round(s["AG"], 1), "%")
"""),
    code("""
explorer.open(explorer.page_rows[0])  # what a click on the first thumbnail does
explorer.detail.widget.wait()  # (a live notebook needs no wait: the map refines on screen)
explorer.export_csv(root / "worst.csv"), explorer.contact_sheet(root / "worst.png", limit=16)
"""),
]

NOTEBOOKS = {
    "01_quickstart": QUICKSTART,
    "02_headless_api": HEADLESS,
    "03_your_own_model": OWN_MODEL,
    "04_torchvision_models": TORCHVISION,
    "dashboard": DASHBOARD,
    "05_dataset": DATASET,
}


def strip_widget_state(nb: nbf.NotebookNode) -> nbf.NotebookNode:
    """Drop the saved widget state (``metadata.widgets``); outputs keep their saved PNGs."""
    nb.metadata.pop("widgets", None)
    return nb


def strip_file(path: Path) -> bool:
    """Remove ``metadata.widgets`` from one notebook file in place; True if it had some."""
    nb = nbf.read(path, as_version=nbf.NO_CONVERT)
    if "widgets" not in nb.metadata:
        return False
    nbf.write(strip_widget_state(nb), path)
    return True


def main(names: list[str]) -> None:
    if names[:1] == ["--strip"]:
        for path in sorted(HERE.glob("*.ipynb")):
            if strip_file(path):
                print("stripped widget state from", path.name)
        return
    for name, cells in NOTEBOOKS.items():
        if names and name not in names:
            continue
        nb = nbf.v4.new_notebook()
        nb.cells = cells
        nb.metadata["kernelspec"] = KERNEL
        nb.metadata["language_info"] = {"name": "python"}
        nbf.write(strip_widget_state(nb), HERE / f"{name}.ipynb")
        print("wrote", name)


if __name__ == "__main__":
    main(sys.argv[1:])
