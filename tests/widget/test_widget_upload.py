"""Your own photos from the browser: the Open photos… button and drops reach the kernel as one
message with the files' bytes (what the drop zone's ES module sends); they become the image
selector, named by file, the first one shown and explained; a file that is no photo is named.

Driven through the widget's comm handler exactly as the browser's message arrives.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from tinynets import SMALL, tiny_cnn

from opticam_widgets.widget import OptiCAMWidget
from opticam_widgets.widget.upload import PhotoDrop, photo_name


def encoded(seed: int, size: tuple[int, int], fmt: str) -> tuple[np.ndarray, bytes]:
    arr = (np.random.default_rng(seed).random((*size, 3)) * 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt)
    return arr, buf.getvalue()


def browser_message(drop: PhotoDrop, names: list[str], blobs: list[bytes]) -> None:
    """What the drop zone's ``model.send(content, undefined, buffers)`` delivers in the kernel."""
    drop._handle_custom_msg({"event": "photos", "names": names},
                            [memoryview(b) for b in blobs])


@pytest.fixture
def widget():
    made = OptiCAMWidget(tiny_cnn(), preprocess=SMALL, save_dir=False)
    made.early_stop = False
    made.controls.iterations.value = 4
    yield made
    made.close()


def test_dropped_photos_become_the_named_image_strip(widget):
    cat, cat_png = encoded(1, (30, 41), "PNG")
    dog, dog_bmp = encoded(2, (25, 19), "BMP")
    browser_message(widget.controls.photos, ["cat.png", "C:\\fakepath\\dog.bmp"],
                    [cat_png, dog_bmp])
    widget.wait(60)
    select = widget.controls.image_select
    assert [label for label, _ in select.options] == ["cat.png", "dog.bmp"]
    strip = widget.controls.image_strip
    assert strip.layout.display == ""  # several photos: the strip shows them, named
    assert [item["name"] for item in strip.items] == ["cat.png", "dog.bmp"]
    assert widget.image_index == 0
    np.testing.assert_array_equal(widget.images[0].rgb, cat)  # lossless: the very pixels
    np.testing.assert_array_equal(widget.images[1].rgb, dog)
    result = widget.result
    assert result is not None and result.saliency.shape == (1, 30, 41)
    assert widget.explain_count == 1  # the first photo was explained at once
    select.value = 1  # the strip steps to the second photo
    widget.wait(60)
    assert widget.result.saliency.shape == (1, 25, 19)


def test_a_file_that_is_no_photo_is_named_and_the_photos_still_load(widget):
    _, png = encoded(3, (16, 16), "PNG")
    browser_message(widget.controls.photos, ["notes.txt", "a.png"], [b"hello <b>", png])
    widget.wait(60)
    assert [label for label, _ in widget.controls.image_select.options] == ["a.png"]
    message = widget.controls.save_status.value
    assert "not a photo (skipped): notes.txt" in message
    assert "<b>" not in message  # names are escaped


def test_only_refused_files_keep_the_shown_images(widget):
    _, png = encoded(4, (20, 20), "PNG")
    browser_message(widget.controls.photos, ["first.png"], [png])
    widget.wait(60)
    before = widget.images[0].rgb.copy()
    browser_message(widget.controls.photos, ["broken.jpg"], [b"\xff\xd8\xff not really"])
    assert [label for label, _ in widget.controls.image_select.options] == ["first.png"]
    np.testing.assert_array_equal(widget.images[0].rgb, before)
    assert "broken.jpg" in widget.controls.save_status.value


def test_other_messages_are_ignored_and_names_are_plain_file_names():
    drop = PhotoDrop()
    got = []
    drop.on_photos(got.append)
    drop._handle_custom_msg({"event": "other"}, [])
    drop._handle_custom_msg("text", [])
    assert got == []
    assert photo_name("../../etc/passwd", 0) == "passwd"
    assert photo_name(None, 2) == "photo 3"
    long = photo_name("x" * 300 + ".jpeg", 0)
    assert len(long) <= 80 and long.endswith(".jpeg")
    drop.close()
