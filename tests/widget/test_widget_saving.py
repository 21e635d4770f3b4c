"""Saving from the widget: plain file names only, one folder, never an overwrite, no server
write in Voilà; browser downloads (PNG + JSON sidecar) and the code that reproduces the map.

Driven as a user would: the file-name box's ``value`` and the buttons' ``click()``.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from tinynets import SMALL, tiny_cnn

from opticam_widgets.widget import OptiCAMWidget
from opticam_widgets.widget.saving import SaveFolder, check_file_name, write_new


def photo(tmp_path: Path) -> Path:
    arr = (np.random.default_rng(0).random((37, 53, 3)) * 255).astype(np.uint8)
    path = tmp_path / "pic.png"
    Image.fromarray(arr).save(path)
    return path


@pytest.fixture
def widget(tmp_path, monkeypatch):
    for name in ("VOILA_KERNEL_ID", "VOILA_BASE_URL", "VOILA_SERVER_URL", "VOILA_APP_PORT"):
        monkeypatch.delenv(name, raising=False)
    out = tmp_path / "maps"
    made = OptiCAMWidget(tiny_cnn(), preprocess=SMALL, save_dir=out)
    made.set_images(str(photo(tmp_path)), run=False)
    made.controls.iterations.value = 6
    made.run(blocking=True)
    yield made
    made.close()


def files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


@pytest.mark.parametrize("name", [
    "../evil", "../../etc/passwd", "/etc/passwd", "/tmp/x.png", "sub/x", "a\\b", "C:x.png",
    "..", ".", "", "   ", "x\x00y", ".bashrc", "~root", "con", "x" * 300,
])
def test_a_name_from_the_ui_is_a_plain_file_name(name):
    with pytest.raises(ValueError, match="`file name`"):
        check_file_name(name)


def test_accepted_names_get_png():
    assert check_file_name(" my map ") == "my map.png"
    assert check_file_name("cat.PNG") == "cat.PNG"
    assert check_file_name("chat-été_1") == "chat-été_1.png"
    with pytest.raises(TypeError, match="`file name`"):
        check_file_name(3)


def test_save_button_refuses_paths_and_writes_nothing(widget, tmp_path):
    c = widget.controls
    summary = c.status.value
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    for name in ("../escape", str(tmp_path / "abs.png"), "../../x.png", "sub/dir.png"):
        c.save_path.value = name
        c.save_button.click()
        assert "Not saved" in c.save_status.value and "file name" in c.save_status.value
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
    assert c.status.value == summary  # the run summary stays
    assert widget.error is None  # a refused name is not a failed run: wait() does not raise
    widget.wait(timeout=10)


def test_save_button_never_overwrites_and_says_the_full_path(widget, tmp_path):
    c, out = widget.controls, tmp_path / "maps"
    summary = c.status.value
    c.save_button.click()  # automatic name
    c.save_button.click()
    c.save_path.value = "mymap"
    c.save_button.click()
    c.save_button.click()
    auto = f"opticam_1_class_{widget.target}"
    assert files(out) == ["mymap (2).png", "mymap.png", f"{auto} (2).png", f"{auto}.png"]
    assert f"Saved <code>{out / 'mymap (2).png'}</code>" == c.save_status.value
    assert c.status.value == summary
    with Image.open(out / "mymap.png") as im:
        assert im.size == (53, 37)
        assert np.array_equal(np.asarray(im.convert("RGB")), widget.overlay_image())


def test_a_link_placed_at_the_name_is_not_followed(widget, tmp_path):
    out = tmp_path / "maps"
    out.mkdir(exist_ok=True)
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    os.symlink(victim, out / "trap.png")
    widget.controls.save_path.value = "trap.png"
    widget.controls.save_button.click()
    assert victim.read_text() == "keep me"
    assert (out / "trap (2).png").is_file() and not (out / "trap (2).png").is_symlink()


def test_write_new_loses_no_race(tmp_path):
    first = write_new(tmp_path / "a.png", b"1")
    second = write_new(tmp_path / "a.png", b"2")
    third = write_new(tmp_path / "a.png", b"3")
    assert [p.name for p in (first, second, third)] == ["a.png", "a (2).png", "a (3).png"]
    assert [p.read_bytes() for p in (first, second, third)] == [b"1", b"2", b"3"]


def test_voila_writes_nothing_on_the_server(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("VOILA_KERNEL_ID", "abc")
    widget = OptiCAMWidget(tiny_cnn(), preprocess=SMALL)
    try:
        widget.set_images(str(photo(tmp_path)), run=False)
        widget.controls.iterations.value = 3
        widget.run(blocking=True)
        c = widget.controls
        assert c.save_button.layout.display == "none" and c.save_path.layout.display == "none"
        assert c.download_button.layout.display != "none"
        c.save_path.value = "x"
        c.save_button.click()  # even a forged click
        assert "off" in c.save_status.value and files(tmp_path) == ["pic.png"]
    finally:
        widget.close()
    assert SaveFolder.from_option(tmp_path / "out").enabled  # the author named a folder
    assert not SaveFolder.from_option(False).enabled


def test_save_dir_is_checked(tmp_path):
    (tmp_path / "f").write_text("")
    with pytest.raises(ValueError, match="`save_dir`"):
        OptiCAMWidget(tiny_cnn(), preprocess=SMALL, save_dir=tmp_path / "f")
    with pytest.raises(TypeError, match="`save_dir`"):
        OptiCAMWidget(tiny_cnn(), preprocess=SMALL, save_dir=3)
    with pytest.raises(TypeError, match="`save_dir`"):
        OptiCAMWidget(tiny_cnn(), preprocess=SMALL, save_dir=True)


def test_api_save_adds_png_and_keeps_files(widget, tmp_path):
    first = widget.save(tmp_path / "api")
    second = widget.save(tmp_path / "api.png")
    assert (first.name, second.name) == ("api.png", "api (2).png")
    third = widget.save(tmp_path / "api.png", overwrite=True)
    assert third == first and len(list(tmp_path.glob("api*.png"))) == 2
    assert widget.save().parent == (tmp_path / "maps").resolve()


def data_urls(html: str) -> dict[str, bytes]:
    found = re.findall(r'<a download="([^"]+)" href="data:[^;]+;base64,([^"]+)"', html)
    return {name: base64.b64decode(data) for name, data in found}


def test_download_links_carry_the_png_and_its_record(widget):
    c = widget.controls
    c.download_button.click()
    got, t = data_urls(c.save_status.value), widget.target
    assert set(got) == {f"opticam_1_class_{t}.png", f"opticam_1_class_{t}.json"}
    with Image.open(io.BytesIO(got[f"opticam_1_class_{t}.png"])) as im:
        assert np.array_equal(np.asarray(im.convert("RGB")), widget.overlay_image())
    record = json.loads(got[f"opticam_1_class_{t}.json"])
    result = widget.result
    assert record["model"] == "Sequential" and record["layer"] == result.layer
    assert record["target"] == {"index": t, "label": f"class {t}"}
    assert record["settings"]["max_iter"] == 6 and record["settings"]["lr"] == pytest.approx(0.2)
    assert record["scores"]["final"] == pytest.approx(float(result.final_score[0]))
    assert record["metrics"]["AD"] == pytest.approx(widget.metrics["AD"])
    assert record["source"].endswith("pic.png")
    c.opacity.value = 0.8  # another picture: the old links go
    assert c.save_status.value == ""
    assert not list((Path(record["source"]).parent / "maps").glob("*"))  # nothing on the server


def test_code_reproduces_the_map(widget):
    c = widget.controls
    c.code_button.click()
    assert c.code.layout.display != "none"
    code = c.code.value
    assert code == widget.code() and "cam.explain(image, target=" in code
    namespace = {"model": tiny_cnn()}
    exec(code, namespace)  # the code as shown: the photo's path, the settings, preprocess
    again = namespace["result"].saliency[0].numpy()
    assert np.abs(again - widget.saliency).max() < 1e-3
    c.code_button.click()
    assert c.code.layout.display == "none"


def test_buttons_before_any_map_say_so(tmp_path):
    widget = OptiCAMWidget(tiny_cnn(), preprocess=SMALL, save_dir=tmp_path)
    try:
        c = widget.controls
        for expected in ("no (image|saliency map) yet", "no saliency map yet"):
            for button in (c.save_button, c.download_button, c.code_button):
                c.save_status.value = ""
                button.click()
                assert re.search(expected, c.save_status.value)
            widget.set_images(torch.rand(3, 20, 30), run=False)
        assert files(tmp_path) == [] and widget.error is None
    finally:
        widget.close()


def test_a_folder_becomes_the_image_strip(tmp_path):
    rng = np.random.default_rng(1)
    for name, size in (("b.jpg", (20, 30)), ("a.png", (24, 16)), ("C.PNG", (18, 18))):
        Image.fromarray((rng.random((*size, 3)) * 255).astype(np.uint8)).save(tmp_path / name)
    (tmp_path / "notes.txt").write_text("not a photo")
    (tmp_path / "sub").mkdir()
    widget = OptiCAMWidget(tiny_cnn(), preprocess=SMALL, save_dir=False)
    try:
        widget.set_images(tmp_path, run=False)
        select = widget.controls.image_select
        assert [n for n, _ in select.options] == ["a.png", "b.jpg", "C.PNG"]
        strip = widget.controls.image_strip  # the strip shows them, named
        assert strip.layout.display != "none"
        assert [item["name"] for item in strip.items] == ["a.png", "b.jpg", "C.PNG"]
        assert [im.rgb.shape[:2] for im in widget.images] == [(24, 16), (20, 30), (18, 18)]
        assert widget.images[1].source == str(tmp_path / "b.jpg")
        with pytest.raises(ValueError, match="`images` is a folder with no photo"):
            widget.set_images(tmp_path / "sub", run=False)
    finally:
        widget.close()
