"""The image strip: a small named thumbnail of each photo, one focusable group, ←/→ to step.

:class:`ImageStrip` is a small `anywidget <https://anywidget.dev>`_ (plain ES module): a
``radiogroup`` named "Images" whose items are real ``<button role="radio">`` elements, each a
thumbnail with its photo's name under it (the name is the button's accessible name; the
picture has an empty ``alt``, its name being the text beside it). The group is one Tab stop
(roving ``tabindex``: the chosen photo's button); ←/→ (and ↑/↓, Home, End) choose the
neighbouring photo and move the focus with it, as the radio-group pattern of WAI-ARIA says;
a click chooses too. The chosen photo is the :attr:`ImageStrip.index` trait, linked by the
widget to its image selector; ``-1`` chooses none (the first photo is then the Tab stop, as for
a radio group with nothing checked: an embedding model's reference strip before a choice).

Example:
    >>> import numpy as np
    >>> strip = ImageStrip()
    >>> strip.show_images([("cat.jpg", np.zeros((30, 40, 3), np.uint8)),
    ...                    ("dog.jpg", np.zeros((40, 30, 3), np.uint8))])
    >>> [item["name"] for item in strip.items], strip.layout.display
    (['cat.jpg', 'dog.jpg'], '')
    >>> strip.items[0]["src"].startswith("data:image/jpeg;base64,")
    True
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from typing import Any

import anywidget
import numpy as np
from PIL import Image
from traitlets import Dict, Int, List, Unicode

from .canvas import display_size, scale_picture

__all__ = ["THUMB_SIZE", "ImageStrip", "link_selector", "thumbnail_src"]

#: Longest side of a thumbnail, in pixels.
THUMB_SIZE = 72

ESM = """
function render({model, el}) {
  el.classList.add('opticam-strip');
  const group = document.createElement('div');
  group.className = 'opticam-strip-group';
  group.setAttribute('role', 'radiogroup');
  group.setAttribute('data-lm-suppress-shortcuts', 'true');
  const named = () => group.setAttribute('aria-label', model.get('label'));
  named();
  model.on('change:label', named);
  el.append(group);
  const buttons = () => Array.from(group.querySelectorAll('button'));
  const mark = () => {
    const at = model.get('index');
    const all = buttons();
    const stop = at >= 0 && at < all.length ? at : 0;  // none chosen: the first is the stop
    const inside = group.contains(document.activeElement);
    all.forEach((b, i) => {
      b.setAttribute('aria-checked', i === at ? 'true' : 'false');
      b.tabIndex = i === stop ? 0 : -1;
      if (i === at && inside && document.activeElement !== b) b.focus();
    });
  };
  const choose = (i) => {
    const n = buttons().length;
    if (i < 0 || i >= n) return;
    model.set('index', i);
    model.save_changes();
    mark();
    buttons()[i].focus();
  };
  const draw = () => {
    group.replaceChildren(...model.get('items').map((item, i) => {
      const b = document.createElement('button');
      b.type = 'button';
      b.className = 'opticam-thumb';
      b.setAttribute('role', 'radio');
      b.setAttribute('data-lm-suppress-shortcuts', 'true');
      const img = document.createElement('img');
      img.src = item.src;
      img.alt = '';
      const name = document.createElement('span');
      name.className = 'opticam-thumb-name';
      name.textContent = item.name;
      b.append(img, name);
      b.addEventListener('click', () => choose(i));
      return b;
    }));
    mark();
  };
  draw();
  model.on('change:items', draw);
  model.on('change:index', mark);
  group.addEventListener('keydown', (e) => {
    const at = buttons().indexOf(e.target.closest('button'));
    if (at < 0) return;
    const steps = {ArrowRight: 1, ArrowDown: 1, ArrowLeft: -1, ArrowUp: -1};
    let next = null;
    if (e.key in steps) next = at + steps[e.key];
    else if (e.key === 'Home') next = 0;
    else if (e.key === 'End') next = buttons().length - 1;
    if (next === null) return;
    e.preventDefault();
    e.stopPropagation();
    choose(Math.max(0, Math.min(buttons().length - 1, next)));
  });
}
export default { render };
"""

CSS = """
.opticam-strip-group { display: flex; flex-wrap: wrap; gap: 6px; align-items: flex-start; }
.opticam-thumb { display: inline-flex; flex-direction: column; align-items: center; gap: 2px;
  padding: 3px; max-width: 96px; cursor: pointer; border-radius: 3px;
  border: 2px solid transparent; background: transparent;
  color: var(--jp-ui-font-color1, #000); font: inherit; font-size: 12px; }
.opticam-thumb img { max-width: 88px; max-height: 72px; display: block; }
.opticam-thumb-name { max-width: 88px; overflow-wrap: anywhere; line-height: 1.3; }
.opticam-thumb[aria-checked='true'] { border-color: var(--jp-brand-color1, #1565c0);
  font-weight: bold; }
.opticam-thumb:focus-visible { outline: 2px solid var(--jp-brand-color1, #1565c0);
  outline-offset: 1px; }
"""


def thumbnail_src(rgb: np.ndarray, size: int = THUMB_SIZE) -> str:
    """A small JPEG of a uint8 (H, W, 3) picture, as a ``data:`` URL (longest side ``size``).

    Example:
        >>> thumbnail_src(np.zeros((10, 20, 3), np.uint8)).startswith("data:image/jpeg;base64,")
        True
    """
    h, w = display_size(int(rgb.shape[0]), int(rgb.shape[1]), size)
    small = scale_picture(np.asarray(rgb, dtype=np.uint8), (h, w))
    buf = io.BytesIO()
    Image.fromarray(small).save(buf, format="JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


class ImageStrip(anywidget.AnyWidget):
    """Thumbnails of the photos, named and focusable; hidden while there is one photo or none.

    Example:
        >>> ImageStrip().layout.display
        'none'
    """

    _esm = ESM
    _css = CSS
    #: ``{"name": ..., "src": data URL}`` of each photo, in order.
    items = List(Dict()).tag(sync=True)
    #: The chosen photo.
    index = Int(0).tag(sync=True)
    #: The group's accessible name.
    label = Unicode("Images").tag(sync=True)

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.layout.display = "none"

    def show_images(self, photos: Sequence[tuple[str, np.ndarray]]) -> None:
        """Show these ``(name, uint8 (H, W, 3))`` photos, the first chosen (one: hidden)."""
        self.items = [{"name": str(name), "src": thumbnail_src(rgb)} for name, rgb in photos]
        self.index = 0
        self.layout.display = "" if len(photos) > 1 else "none"


def link_selector(strip: ImageStrip, select: Any) -> None:
    """Keep the strip's chosen photo and the image selector's value (an index) the same.

    Example:
        >>> import ipywidgets as w
        >>> strip, select = ImageStrip(), w.Dropdown(options=[("a", 0), ("b", 1)])
        >>> link_selector(strip, select)
        >>> strip.index = 1
        >>> select.value
        1
    """

    def from_strip(change: dict) -> None:
        index = int(change["new"])
        if select.value != index and 0 <= index < len(select.options):
            select.value = index

    def from_select(change: dict) -> None:
        if change["new"] is not None and strip.index != int(change["new"]):
            strip.index = int(change["new"])

    strip.observe(from_strip, "index")
    select.observe(from_select, "value")
