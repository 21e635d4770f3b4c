"""Saving as a user meets it, in a real Chromium.

Voilà: no Save button (no server write), and **Download** gives the browser a real download
(Playwright's download event): the PNG at the photo's size and its JSON sidecar. JupyterLab: a
``../`` or absolute name typed in the file-name box is refused with nothing written anywhere,
and two Saves under one name make two files (no overwrite), the full path said.

A tiny random-weight CNN keeps the notebook fast (the dashboard's model is tested elsewhere).
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from pagetools import App, Widget, one_cell_notebook, wait_for, widget_errors
from PIL import Image

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

SOURCE = """
import torch
from torch import nn
from opticam_widgets import OptiCAMWidget

torch.manual_seed(0)
net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1),
                    nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4)).eval()
widget = OptiCAMWidget(net, preprocess={"size": (32, 32)}, max_size=240)
widget.controls.iterations.value = 5
widget.show(torch.rand(3, 60, 80, generator=torch.Generator().manual_seed(0)))
"""


def tree(folder: Path) -> list[str]:
    """The files a user sees (Jupyter's own dot-folders, written as it runs, left out)."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")
                  if not any(part.startswith(".") for part in p.relative_to(folder).parts))


def test_voila_downloads_png_and_json_without_server_write(kernel_page, lab_server, notebook_dir,
                                                          artifacts, request):
    name = one_cell_notebook(notebook_dir, SOURCE, "voila-saving.ipynb")
    root = notebook_dir.parent
    before = tree(root)
    page = kernel_page
    page.goto(f"{lab_server}/voila/render/{name}", wait_until="commit")
    widget = Widget.find(page, timeout=180)
    widget.wait_finished(120, "the first run")
    assert widget.button("Save PNG").count() == 0 or not widget.button(
        "Save PNG").is_visible()
    widget.button("Download").click()
    png_link = widget.root.locator("a[download$='.png']")
    png_link.wait_for(timeout=20_000)
    with page.expect_download(timeout=20_000) as info:
        png_link.click()
    download = info.value
    assert re.fullmatch(r"opticam_1_class_\d\.png", download.suggested_filename)
    with Image.open(io.BytesIO(Path(download.path()).read_bytes())) as im:
        assert im.size == (80, 60)
        assert np.asarray(im.convert("RGB")).std() > 5  # a picture, not a blank
    with page.expect_download(timeout=20_000) as info:
        widget.root.locator("a[download$='.json']").click()
    record = json.loads(Path(info.value.path()).read_text())
    assert record["model"] == "Sequential" and record["settings"]["max_iter"] == 5
    assert record["target"]["index"] == int(download.suggested_filename[-5])
    assert {"AD", "AG"} <= set(record["metrics"])
    assert tree(root) == before  # nothing written on the server
    assert not widget_errors(page), widget_errors(page)


def test_lab_save_refuses_paths_and_never_overwrites(kernel_page, lab_server, notebook_dir,
                                                     artifacts, request):
    name = one_cell_notebook(notebook_dir, SOURCE, "lab-saving.ipynb")
    root = notebook_dir.parent
    page = kernel_page
    app = App(page, lab_server)
    app.open(f"lab/tree/{name}")
    app.command("notebook:run-all-cells")
    widget = Widget.find(page, timeout=180)
    widget.wait_finished(120, "the first run")
    summary = widget.status_text()
    box = widget.root.locator(".widget-text", has_text="File name").locator("input")
    message = widget.root.locator(".opticam-live").first  # (the yardstick panel has its own)
    before = tree(root)
    for bad in ("../escape", "../../escape.png", str(root / "abs.png"), "/tmp/abs.png"):
        box.fill(bad)
        box.press("Enter")
        widget.button("Save PNG").click()
        wait_for(lambda: "Not saved" in message.inner_text(), 20, f"{bad!r} refused",
                 describe=message.inner_text)
        assert "file name only" in message.inner_text()
    assert tree(root) == before and not Path("/tmp/abs.png").exists()
    box.fill("mine")
    box.press("Enter")
    for expected in ("mine.png", "mine (2).png"):
        widget.button("Save PNG").click()
        wait_for(lambda e=expected: e in message.inner_text(), 20, f"{expected} saved",
                 describe=message.inner_text)
        assert str(notebook_dir / expected) in message.inner_text()  # the full path
    assert (notebook_dir / "mine.png").is_file() and (notebook_dir / "mine (2).png").is_file()
    assert widget.status_text() == summary  # the run summary stays
