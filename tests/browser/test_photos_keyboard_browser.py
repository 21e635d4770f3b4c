"""Your own photo, the keyboard and a screen reader, in a real JupyterLab and Chromium.

- **Open photos…** opens the browser's file chooser; two chosen files become the image
  selector (named by file) and the first one is explained; a photo dropped on the widget (a
  real ``drop`` event carrying a ``DataTransfer`` with a file) replaces them.
- The keyboard: Tab from the first control reaches every control in order and leaves the
  widget (the canvas keeps no focus), ArrowDown on the class list picks the next class (and
  does not move JupyterLab to the next cell), ←/→ on the image strip (named thumbnails) step
  through photos, the iterations are typed or stepped on their log-scale slider.
- "Why A and not B" from the keyboard: its toggle, two class pickers and its button give two
  titled maps, their difference and a metrics table; "Brush to test": a real pointer drag on
  its canvas changes the class probabilities (text), the "hide top" buttons and Reset too.
- axe-core (shipped offline by ``axe-playwright-python``) finds no violation in the widget,
  with both panels open.

A tiny random-weight CNN keeps the notebook fast.
"""

from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import new_page, save_if_failed, shutdown_kernels
from pagetools import (
    BACKGROUND_JS,
    App,
    Widget,
    axe_violations,
    contrast,
    one_cell_notebook,
    wait_for,
    widget_errors,
)
from PIL import Image

pytestmark = [pytest.mark.browser, pytest.mark.timeout(400)]

SOURCE = """
import torch
from torch import nn
from opticam_widgets import OptiCAMWidget

torch.manual_seed(0)
net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1),
                    nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4)).eval()
widget = OptiCAMWidget(net, preprocess={"size": (32, 32)}, max_size=240, save_dir=False)
widget.controls.iterations.value = 5
widget.show(torch.rand(3, 60, 80, generator=torch.Generator().manual_seed(0)))
"""

#: What has the focus: its tag, its accessible-ish name and whether it is in ``root``.
FOCUS_JS = """(root) => {
    const e = document.activeElement;
    if (!e) return null;
    const lab = e.closest('.widget-inline-hbox, .widget-slider, .widget-dropdown, .widget-text');
    const label = lab && lab.querySelector('.widget-label');
    return {tag: e.tagName, inside: root.contains(e),
            name: (e.getAttribute('aria-label') || (label && label.textContent) ||
                   e.textContent || e.getAttribute('placeholder') || '').trim().slice(0, 30)};
}"""

#: Drops files (name, base64 bytes, MIME type) on ``target`` as a browser drop does.
DROP_JS = """(target, files) => {
    const dt = new DataTransfer();
    for (const [name, b64, type] of files) {
        const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
        dt.items.add(new File([bytes], name, {type}));
    }
    const at = target.getBoundingClientRect();
    const opts = {bubbles: true, cancelable: true, dataTransfer: dt,
                  clientX: at.left + 20, clientY: at.top + 20};
    target.dispatchEvent(new DragEvent('dragenter', opts));
    target.dispatchEvent(new DragEvent('dragover', opts));
    const outlined = target.closest('.opticam-widget').classList.contains('opticam-dragging');
    target.dispatchEvent(new DragEvent('drop', opts));
    return outlined;
}"""


def png(seed: int, size: tuple[int, int]) -> bytes:
    arr = (np.random.default_rng(seed).random((*size, 3)) * 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def image_names(widget: Widget) -> list[str]:
    """The names under the thumbnails of the image strip."""
    return [t.strip() for t in widget.root.locator(".opticam-thumb-name").all_inner_texts()]


@pytest.fixture()
def lab_widget(browser, lab_server, notebook_dir, artifacts, request):
    name = one_cell_notebook(notebook_dir, SOURCE, f"photos-{request.node.name[:20]}.ipynb")
    page = new_page(browser, lab_server)
    try:
        app = App(page, lab_server)
        app.open(f"lab/tree/{name}")
        app.command("notebook:run-all-cells")
        widget = Widget.find(page, timeout=180)
        widget.wait_finished(120, "the first run")
        yield app, widget, tmp_files(notebook_dir.parent / f"upload-{request.node.name[:20]}")
    finally:
        save_if_failed(request, page, artifacts)
        page.context.close()
        shutdown_kernels(lab_server)


def tmp_files(folder: Path) -> Path:
    folder.mkdir(exist_ok=True)
    (folder / "cat.png").write_bytes(png(1, (50, 70)))
    (folder / "dog.png").write_bytes(png(2, (64, 48)))
    (folder / "notes.txt").write_text("not a photo")
    return folder


def test_open_photos_and_drop_a_photo(lab_widget, artifacts):
    app, widget, folder = lab_widget
    page = widget.page
    with page.expect_file_chooser(timeout=20_000) as chooser:
        widget.root.locator("button.opticam-open").click()
    assert chooser.value.is_multiple()
    chooser.value.set_files([str(folder / "cat.png"), str(folder / "dog.png"),
                             str(folder / "notes.txt")])
    wait_for(lambda: image_names(widget) == ["cat.png", "dog.png"], 60, "the chosen photos",
             describe=lambda: image_names(widget))
    widget.wait_finished(60, "the first chosen photo explained")
    assert app.kernel_value("widget.images[0].rgb.shape") == "(50, 70, 3)"
    assert "notes.txt" in widget.root.locator(".opticam-live").first.inner_text()  # the photos line

    files = [("bird.png", base64.b64encode(png(3, (40, 40))).decode(), "image/png")]
    outlined = widget.main_canvas().evaluate(DROP_JS, files)
    assert outlined  # the widget outlines itself while photos are dragged over it
    wait_for(lambda: app.kernel_value("[im.name for im in widget.images]") == "['bird.png']",
             60, "the dropped photo", describe=lambda: app.kernel_value(
                 "[im.name for im in widget.images]"))
    assert app.kernel_value("widget.images[0].rgb.shape") == "(40, 40, 3)"
    widget.wait_finished(60, "the dropped photo explained")
    assert not widget_errors(widget.page), widget_errors(widget.page)


def test_keyboard_path_and_axe(lab_widget, artifacts):
    app, widget, folder = lab_widget
    page = widget.page
    app.kernel_value(f"widget.set_images([{str(folder / 'cat.png')!r}, "
                     f"{str(folder / 'dog.png')!r}]) and None")
    wait_for(lambda: image_names(widget) == ["cat.png", "dog.png"], 60, "two photos")
    widget.wait_finished(60, "the first photo explained")

    # --- Tab from the first control: every control in order, then out of the widget
    widget.root.locator("button.opticam-open").focus()
    seen = []
    for _ in range(40):
        now = widget.root.evaluate(FOCUS_JS)
        if not now or not now["inside"]:
            break
        seen.append((now["tag"], now["name"]))
        page.keyboard.press("Tab")
    names = [name for _tag, name in seen]
    assert not any(tag == "CANVAS" for tag, _ in seen), seen
    assert len(seen) < 40, f"Tab stays in the widget: {seen[-5:]}"
    for wanted in ("Open photos", "cat.png", "Class", "Iterations", "Iterations, log scale",
                   "Learning rate", "Run", "overlay", "Opacity", "Colormap", "Compare with",
                   "Download", "Code", "Why A and not B", "Brush to test"):
        assert any(n.startswith(wanted) for n in names), (wanted, names)
    assert "dog.png" not in names  # the strip is one Tab stop (←/→ move inside it)
    order = [next(i for i, n in enumerate(names) if n.startswith(w))
             for w in ("Open photos", "cat.png", "Class", "Iterations", "Run", "Opacity",
                       "Download", "Why A and not B", "Brush to test")]
    assert order == sorted(order), names

    # --- the focus is visible: an outline of at least 3:1 against what is behind it
    for control in (widget.class_select, widget.button("Run"), widget.slider_handle("Opacity")):
        control.focus()
        page.keyboard.press("Shift+Tab")
        page.keyboard.press("Tab")  # focus by the keyboard (:focus-visible)
        outline = control.evaluate(
            "e => { const s = getComputedStyle(e); return [s.outlineStyle, s.outlineWidth,"
            " s.outlineColor]; }")
        assert outline[0] != "none" and float(outline[1].rstrip("px")) >= 2, outline
        colour = [float(v) for v in outline[2][outline[2].index("(") + 1:-1].split(",")[:3]]
        # the outline is drawn outside the control (offset 1px): against what is around it
        behind = control.evaluate_handle("e => e.parentElement").evaluate(BACKGROUND_JS)
        assert contrast(colour, behind) >= 3.0, (outline, behind)

    # --- ArrowDown on the class list picks the next class; the notebook's cell stays
    cell = page.evaluate("() => window.jupyterapp.shell.currentWidget.content.activeCellIndex")
    select = widget.class_select
    select.focus()
    index = "s => s.selectedIndex"
    assert select.evaluate(index) == 0
    page.keyboard.press("ArrowDown")
    wait_for(lambda: select.evaluate(index) == 1, 10, "the next class")
    assert page.evaluate(
        "() => window.jupyterapp.shell.currentWidget.content.activeCellIndex") == cell
    wait_for(lambda: app.kernel_value("widget.controls.class_select.index") == "1", 20,
             "the kernel's class to follow")

    # --- Iterations are typed in their box, or stepped on a log scale (×1.26 a key)
    box = widget.root.locator(".widget-text", has_text="Iterations").locator("input")
    box.click()
    page.keyboard.press("Control+A")
    page.keyboard.type("37")
    page.keyboard.press("Enter")
    wait_for(lambda: app.kernel_value("widget.controls.iterations.value") == "37", 20,
             "the typed number of iterations")
    widget.iterations_scale().focus()
    page.keyboard.press("ArrowRight")
    wait_for(lambda: 37 < int(app.kernel_value("widget.controls.iterations.value")) <= 60, 20,
             "one step up the log scale", describe=lambda: app.kernel_value(
                 "widget.controls.iterations.value"))
    app.kernel_value("setattr(widget.controls.iterations, 'value', 5)")

    # --- ←/→ on the image strip step through the photos; the focus follows
    widget.root.locator(".opticam-thumb[aria-checked='true']").focus()
    page.keyboard.press("ArrowRight")
    wait_for(lambda: app.kernel_value("widget.image_index") == "1", 20, "the next photo")
    assert page.evaluate("() => document.activeElement.textContent") == "dog.png"
    page.keyboard.press("ArrowLeft")
    wait_for(lambda: app.kernel_value("widget.image_index") == "0", 20, "the previous photo")
    assert widget.root.locator(".opticam-thumb[aria-checked='true']").inner_text() == "cat.png"
    widget.wait_finished(60, "the run after stepping")
    why_a_and_not_b(app, widget)
    brush_to_test(app, widget)

    # --- every control named, status announced, focus visible: axe-core finds nothing
    violations = axe_violations(page, widget.root)
    (artifacts / "widget-axe.json").write_text(json.dumps(violations, indent=1))
    assert violations == [], violations
    page.screenshot(path=str(artifacts / "widget-panels.png"), full_page=True)
    status = widget.root.locator(".opticam-status")
    assert status.get_attribute("aria-live") == "polite"
    handles = widget.root.locator(".noUi-handle")
    assert {handles.nth(i).get_attribute("aria-label") for i in range(handles.count())} >= {
        "Iterations, log scale", "Learning rate", "Opacity", "Brush size"}


def why_a_and_not_b(app, widget: Widget) -> None:
    """By keyboard: the toggle, the two class pickers, the button; two titled maps, their
    difference and one metrics table with a column per map."""
    page = widget.page
    toggle = widget.root.locator("button", has_text="Why A and not B")
    toggle.focus()
    page.keyboard.press("Space")
    label = page.locator(".widget-label", has_text=re.compile(r"^Why$"))
    why = widget.root.locator(".widget-dropdown", has=label).locator("select")
    why.wait_for(state="visible", timeout=20_000)
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.tagName") == "SELECT"
    page.keyboard.press("Tab")  # "and not": step down to the next class that is not A
    values = eval(app.kernel_value("[v for _, v in widget._parts.contrast.class_b.options]"))
    a, b = eval(app.kernel_value("(widget._parts.contrast.class_a.value, "
                                 "widget._parts.contrast.class_b.value)"))
    wanted = next(v for v in values[values.index(b) + 1:] if v != a)
    for _ in range(values.index(wanted) - values.index(b)):
        page.keyboard.press("ArrowDown")
    wait_for(lambda: app.kernel_value("widget._parts.contrast.class_b.value") == str(wanted),
             20, "B chosen by the keyboard")
    page.keyboard.press("Tab")
    assert "Explain the difference" in page.evaluate("() => document.activeElement.textContent")
    page.keyboard.press("Enter")
    panel = widget.root.locator(".widget-vbox", has=page.locator(
        "button", has_text="Why A and not B")).last
    wait_for(lambda: "(difference)" in panel.inner_text(), 120, "the two maps and their "
             "difference", describe=lambda: panel.inner_text()[:300])
    text = panel.inner_text()
    assert text.count("Opti-CAM map of") == 2 and "more for" in text, text
    assert panel.locator("table.opticam-metrics th[scope='col']").count() == 2
    assert app.kernel_value("widget._parts.contrast.canvases[2].saliency is not None") == "True"


def brush_to_test(app, widget: Widget) -> None:
    """A pointer drag on the brush's canvas changes the probabilities (text); the "hide top"
    buttons (keyboard) and Reset too."""
    page = widget.page
    toggle = widget.root.locator("button", has_text="Brush to test")
    toggle.focus()
    page.keyboard.press("Space")
    canvas = widget.root.locator(".opticam-brush canvas")
    canvas.wait_for(state="visible", timeout=20_000)
    text = widget.root.locator(".opticam-brush .opticam-panel-live")
    wait_for(lambda: "the whole photo" in text.inner_text(), 20, "the probabilities")
    box = canvas.bounding_box()
    page.mouse.move(box["x"] + 5, box["y"] + box["height"] / 2)
    page.mouse.down()
    for i in range(1, 11):
        page.mouse.move(box["x"] + 5 + i * (box["width"] - 10) / 10,
                        box["y"] + box["height"] / 2, steps=2)
    page.mouse.up()
    wait_for(lambda: "of the photo filled" in text.inner_text(), 30, "the brushed probabilities",
             describe=text.inner_text)
    painted = float(app.kernel_value("1 - float(widget._parts.brush.keep.mean())"))
    assert 0.02 < painted < 0.2, painted  # a band across the photo
    assert "→" in text.inner_text() and text.get_attribute("aria-live") == "polite"
    widget.button("Hide top 50%").focus()
    page.keyboard.press("Enter")
    wait_for(lambda: "50% of the photo filled" in text.inner_text(), 30, "the top half hidden",
             describe=text.inner_text)
    widget.button("Reset").click()
    wait_for(lambda: "the whole photo" in text.inner_text(), 20, "the whole photo again")


def test_voila_app_is_named_and_axe_clean(kernel_page, lab_server, notebook_dir, artifacts,
                                          request):
    """In Voilà (what a non-programmer meets): the open button, no canvas in the Tab order,
    and axe-core finds no violation in the widget."""
    name = one_cell_notebook(notebook_dir, SOURCE, "photos-voila.ipynb")
    page = kernel_page
    page.goto(f"{lab_server}/voila/render/{name}", wait_until="commit")
    widget = Widget.find(page, timeout=180)
    widget.wait_finished(120, "the first run")
    assert widget.root.locator("button.opticam-open").is_visible()
    wait_for(lambda: widget.root.locator("canvas[tabindex='0']").count() == 0, 20,
             "the canvases out of the Tab order")
    violations = axe_violations(page, widget.root)
    assert violations == [], violations
    assert not widget_errors(page), widget_errors(page)
