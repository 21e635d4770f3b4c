"""Your own photos in one gesture: an **Open photos…** button and drag-and-drop onto the widget.

ipywidgets has no drop event, and its ``FileUpload`` keeps its file input out of the page (no
drop target), so :class:`PhotoDrop` is a small `anywidget <https://anywidget.dev>`_ (plain ES
module, no build step): a real ``<button>`` that opens the browser's file chooser (several
files at once), and the whole widget (its root, CSS class ``opticam-widget``) as a drop target
that outlines itself while photos are dragged over it. The browser reads the files and sends
their bytes to the kernel in one message; :meth:`PhotoDrop.receive` decodes them with Pillow
(a file that is no photo is named and skipped, never a raw error) and hands the photos, named
by their file names, to the widget, which shows the first one at once.

The same module makes the widget usable from the keyboard and by screen readers where plain
ipywidgets fall short (see :data:`KEYBOARD_JS`): the canvases leave the Tab order (ipycanvas
gives them ``tabindex=0`` and swallows every key, Tab included: a keyboard trap), each slider
handle takes the name of its slider, the status and message lines are ``aria-live="polite"``,
fields and sliders carry ``data-lm-suppress-shortcuts`` (JupyterLab then leaves their keys,
ArrowDown included, to them), and ←/→ on the image selector step through the photos.

Example:
    >>> drop = PhotoDrop()
    >>> got = []
    >>> drop.on_photos(lambda photos: got.extend(name for name, _ in photos))
    >>> import io
    >>> from PIL import Image
    >>> png = io.BytesIO()
    >>> Image.new("RGB", (4, 3)).save(png, format="PNG")
    >>> drop.receive(["cat.png", "notes.txt"], [png.getvalue(), b"hello"])
    ['notes.txt']
    >>> got
    ['cat.png']
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from pathlib import PurePath
from typing import Any

import anywidget
from PIL import Image, UnidentifiedImageError
from traitlets import Unicode

__all__ = ["KEYBOARD_JS", "KeyboardHelper", "PhotoDrop", "photo_name"]

#: Longest file name kept from the browser (longer ones are cut, the extension kept).
MAX_NAME = 80

#: Finds the widget's root and keeps its controls keyboard- and screen-reader-friendly:
#: run on every change of the root's subtree (ipywidgets render children late).
KEYBOARD_JS = """
function tend(root) {
  for (const c of root.querySelectorAll('canvas')) {
    if (c.getAttribute('tabindex') !== '-1') c.setAttribute('tabindex', '-1');
    if (!c.hasAttribute('aria-hidden')) c.setAttribute('aria-hidden', 'true');
  }
  for (const s of root.querySelectorAll('.widget-slider, .widget-hslider')) {
    const label = s.querySelector('.widget-label');
    // a slider without a visible label is named by its tooltip (the log-scale iterations)
    const name = (label ? label.textContent.trim() || label.title : '') ||
      s.getAttribute('title') || '';
    for (const h of s.querySelectorAll('[role="slider"], .noUi-handle')) {
      if (name && h.getAttribute('aria-label') !== name) h.setAttribute('aria-label', name);
    }
  }
  for (const e of root.querySelectorAll(
      'select, input, textarea, .noUi-handle, .widget-slider, .widget-toggle-buttons')) {
    if (!e.hasAttribute('data-lm-suppress-shortcuts'))
      e.setAttribute('data-lm-suppress-shortcuts', 'true');
  }
  // a picture of ipywidgets' Image has no text alternative: its neighbours say what it shows
  for (const img of root.querySelectorAll('img:not([alt])')) img.setAttribute('alt', '');
  for (const e of root.querySelectorAll('.opticam-live, .opticam-status, .opticam-panel-live')) {
    if (e.getAttribute('aria-live') !== 'polite') {
      e.setAttribute('aria-live', 'polite');
      e.setAttribute('role', 'status');
    }
  }
}
function stepImages(root, event) {
  const box = event.target.closest('.opticam-images');
  if (!box || event.target.tagName !== 'SELECT') return;
  if (event.key !== 'ArrowLeft' && event.key !== 'ArrowRight') return;
  const sel = event.target, n = sel.options.length;
  const next = sel.selectedIndex + (event.key === 'ArrowRight' ? 1 : -1);
  event.preventDefault();
  if (next < 0 || next >= n) return;
  sel.selectedIndex = next;
  sel.dispatchEvent(new Event('change', {bubbles: true}));
}
function stepTiles(root, event) {
  if (!event.target.closest || !event.target.closest('.opticam-tile-open')) return;
  if (event.key !== 'ArrowLeft' && event.key !== 'ArrowRight') return;
  const tiles = Array.from(root.querySelectorAll('.opticam-tile-open'))
    .filter((b) => b.getClientRects().length > 0);
  const at = tiles.indexOf(event.target.closest('.opticam-tile-open'));
  const next = tiles[at + (event.key === 'ArrowRight' ? 1 : -1)];
  event.preventDefault();
  if (next) next.focus();
}
function keyboard(root) {
  if (root.__opticamKeyboard) return;
  root.__opticamKeyboard = true;
  tend(root);
  new MutationObserver(() => tend(root)).observe(root, {childList: true, subtree: true});
  // an explorer's detail opened (shown, or a new title): bring it into view
  new MutationObserver((changes) => {
    const opened = changes.some((m) => m.target.closest && (m.target.closest(
      '.opticam-detail-title') || (m.type === 'attributes' &&
      m.target.classList.contains('opticam-explorer-detail'))));
    const detail = root.querySelector('.opticam-explorer-detail');
    if (opened && detail && detail.getClientRects().length)
      requestAnimationFrame(() => detail.scrollIntoView({block: 'nearest'}));
  }).observe(root, {childList: true, subtree: true, characterData: true, attributes: true,
                    attributeFilter: ['style']});
  root.addEventListener('keydown', (e) => {
    if (e.__opticamSeen) return;  // an explorer holds a widget: one root handles a key
    e.__opticamSeen = true;
    // ipycanvas swallows every key on a focused canvas (Tab included): let Tab leave it
    if (e.key === 'Tab' && e.target.tagName === 'CANVAS') e.stopPropagation();
    stepImages(root, e);
    stepTiles(root, e);
  }, true);
}
"""

#: The drop zone's ES module (anywidget's ``render``).
ESM = KEYBOARD_JS + """
async function send(model, files, status) {
  const photos = Array.from(files || []);
  if (!photos.length) return;
  status.textContent = `reading ${photos.length} file${photos.length > 1 ? 's' : ''}…`;
  const buffers = await Promise.all(photos.map((f) => f.arrayBuffer()));
  model.send({event: 'photos', names: photos.map((f) => f.name)}, undefined, buffers);
}
function render({model, el}) {
  el.classList.add('opticam-drop');
  const input = document.createElement('input');
  input.type = 'file';
  input.multiple = true;
  input.accept = 'image/*';
  input.hidden = true;
  input.tabIndex = -1;
  const button = document.createElement('button');
  button.type = 'button';
  button.className = 'jupyter-button widget-button opticam-open';
  const label = () => { button.textContent = model.get('label'); };
  label();
  model.on('change:label', label);
  const hint = document.createElement('span');
  hint.className = 'opticam-drop-hint';
  hint.textContent = 'or drop photos on the widget';
  const status = document.createElement('span');
  status.className = 'opticam-drop-hint';
  status.setAttribute('aria-live', 'polite');
  el.append(button, input, hint, status);
  button.addEventListener('click', () => input.click());
  input.addEventListener('change', () => send(model, input.files, status)
    .finally(() => { input.value = ''; }));
  model.on('msg:custom', (msg) => { if (msg.event === 'read') status.textContent = ''; });
  let root = null;
  const over = (e) => {
    if (!e.dataTransfer || !Array.from(e.dataTransfer.types || []).includes('Files')) return;
    e.preventDefault();
    root.classList.add('opticam-dragging');
  };
  const leave = (e) => {
    if (!e.relatedTarget || !root.contains(e.relatedTarget))
      root.classList.remove('opticam-dragging');
  };
  const drop = (e) => {
    if (!e.dataTransfer || !e.dataTransfer.files.length) return;
    e.preventDefault();
    e.stopPropagation();
    root.classList.remove('opticam-dragging');
    send(model, e.dataTransfer.files, status);
  };
  const attach = (tries) => {
    root = el.closest('.opticam-widget');
    if (!root) {
      if (tries > 0) setTimeout(() => attach(tries - 1), 100);
      root = null;
      return;
    }
    keyboard(root);
    root.addEventListener('dragover', over);
    root.addEventListener('dragenter', over);
    root.addEventListener('dragleave', leave);
    root.addEventListener('drop', drop);
  };
  attach(100);
  return () => {
    if (!root) return;
    root.removeEventListener('dragover', over);
    root.removeEventListener('dragenter', over);
    root.removeEventListener('dragleave', leave);
    root.removeEventListener('drop', drop);
  };
}
export default { render };
"""

#: The drop zone's stylesheet: an outline on the widget while photos are dragged over it.
CSS = """
.opticam-drop { display: inline-flex; align-items: center; gap: 6px; flex-wrap: wrap; }
.opticam-drop .opticam-open { width: auto; padding: 0 10px; }
.opticam-drop-hint { color: var(--jp-ui-font-color2, #555); font-size: 12px; }
.opticam-dragging { outline: 3px dashed var(--jp-brand-color1, #1565c0); outline-offset: 2px; }
"""

#: The keyboard helper's ES module: it only tends the root it is in (an explorer's).
HELPER_ESM = KEYBOARD_JS + """
function render({el}) {
  el.classList.add('opticam-keyboard');
  const attach = (tries) => {
    const root = el.closest('.opticam-explorer, .opticam-widget');
    if (root) keyboard(root);
    else if (tries > 0) setTimeout(() => attach(tries - 1), 100);
  };
  attach(100);
}
export default { render };
"""

Photos = list[tuple[str, Image.Image]]


def photo_name(name: Any, index: int) -> str:
    """A browser file's name, kept to a plain file name of at most :data:`MAX_NAME` characters.

    Example:
        >>> photo_name("C:/fakepath/cat.jpg", 0), photo_name("", 1)
        ('cat.jpg', 'photo 2')
    """
    text = PurePath(str(name).replace("\\", "/")).name.strip() if name else ""
    if not text:
        return f"photo {index + 1}"
    if len(text) > MAX_NAME:
        suffix = PurePath(text).suffix[:10]
        text = text[: MAX_NAME - len(suffix) - 1] + "…" + suffix
    return text


def decode_photo(data: bytes, name: str) -> Image.Image | None:
    """The photo in ``data`` (fully read, named by ``filename``), or ``None`` if it is none."""
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        return None
    image.filename = name  # the widget names an image by its file name
    return image


class PhotoDrop(anywidget.AnyWidget):
    """The **Open photos…** button, and the widget as a drop target for photos.

    Example:
        >>> drop = PhotoDrop()
        >>> drop.label
        'Open photos…'
    """

    _esm = ESM
    _css = CSS
    #: The button's text.
    label = Unicode("Open photos…").tag(sync=True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._handlers: list[Callable[[Photos], None]] = []
        self._refused: list[Callable[[list[str]], None]] = []
        self.on_msg(self._message)

    def on_photos(self, handler: Callable[[Photos], None]) -> None:
        """Call ``handler(photos)`` with the ``(name, PIL image)`` pairs the user gives."""
        self._handlers.append(handler)

    def on_refused(self, handler: Callable[[list[str]], None]) -> None:
        """Call ``handler(names)`` with the names of given files that are not photos."""
        self._refused.append(handler)

    def receive(self, names: Sequence[Any], buffers: Sequence[Any]) -> list[str]:
        """Decode files given in the browser; hand the photos on; the names refused.

        Example:
            >>> PhotoDrop().receive(["a.txt"], [b"not a photo"])
            ['a.txt']
        """
        photos: Photos = []
        refused: list[str] = []
        for i, data in enumerate(buffers):
            name = photo_name(names[i] if i < len(names) else "", i)
            image = decode_photo(bytes(data), name)
            if image is None:
                refused.append(name)
            else:
                photos.append((name, image))
        if refused:
            for handler in self._refused:
                handler(refused)
        if photos:
            for handler in self._handlers:
                handler(photos)
        return refused

    def _message(self, _widget: Any, content: Any, buffers: Sequence[Any]) -> None:
        if not isinstance(content, dict) or content.get("event") != "photos":
            return
        names = content.get("names")
        try:
            self.receive(names if isinstance(names, list) else [], list(buffers or []))
        finally:
            self.send({"event": "read"})


class KeyboardHelper(anywidget.AnyWidget):
    """An invisible part that makes the box it is in keyboard- and screen-reader-friendly.

    Put it in a box of CSS class ``opticam-explorer`` (or ``opticam-widget``): see
    :data:`KEYBOARD_JS`; ←/→ on a tile's open button (``opticam-tile-open``) move to the
    neighbouring tile.

    Example:
        >>> KeyboardHelper().layout.display
        'none'
    """

    _esm = HELPER_ESM

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.layout.display = "none"
