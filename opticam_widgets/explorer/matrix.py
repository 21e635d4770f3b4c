"""The explorer's clickable confusion matrix: a count per (true, predicted) pair, a filter.

A small `anywidget <https://anywidget.dev>`_ (plain ES module, no build step) that draws a real
HTML ``<table>``: a caption saying what is counted (labelled rows only), the predicted classes
as column headers, the true classes as row headers, and one ``<button>`` per cell named like
``"true cat, predicted dog: 3 rows"`` (its text is the count). Clicking a cell, or Enter /
Space on it, sets :attr:`ConfusionMatrix.chosen`; the explorer then keeps that cell's rows
(:attr:`Query.cell <opticam_widgets.explorer.query.Query.cell>`). **Show all cells** clears it.

Keyboard: the matrix is one Tab stop (the chosen cell, else the first cell with rows); the
arrow keys, Home and End move between cells (JupyterLab leaves them to it:
``data-lm-suppress-shortcuts``). An empty cell is ``aria-disabled`` (it keeps its place in
the arrow order). The chosen cell is ``aria-pressed``; a polite live line says what the grid
shows.

Example:
    >>> from opticam_widgets.explorer.confusion import Confusion
    >>> m = ConfusionMatrix()
    >>> m.update(Confusion(("cat",), ("cat", "dog"), ((2, 1),), labelled=3,
    ...                    true_classes=1, predicted_classes=2, same=(("cat", "cat"),)))
    >>> m.choose("cat", "dog")
    >>> m.cell
    ('cat', 'dog')
    >>> m.clear()
    >>> m.cell is None
    True
"""

from __future__ import annotations

from typing import Any

import anywidget
from traitlets import Dict, List, Unicode

from .confusion import Confusion, cell_name

__all__ = ["CSS", "ESM", "ConfusionMatrix"]

#: The matrix's ES module (anywidget's ``render``).
ESM = """
const KEYS = ['ArrowLeft', 'ArrowRight', 'ArrowUp', 'ArrowDown', 'Home', 'End'];
function cells(el) { return Array.from(el.querySelectorAll('button.opticam-cm-cell')); }
function roving(el) {
  const all = cells(el);
  const pick = all.find((b) => b.getAttribute('aria-pressed') === 'true') ||
    all.find((b) => b.getAttribute('aria-disabled') !== 'true') || all[0];
  for (const b of all) b.tabIndex = b === pick ? 0 : -1;
}
function mark(el, model) {
  const chosen = model.get('chosen') || [];
  for (const b of cells(el)) {
    const on = chosen.length === 2 && b.dataset.true === chosen[0] &&
      b.dataset.predicted === chosen[1];
    b.setAttribute('aria-pressed', on ? 'true' : 'false');
  }
  const clear = el.querySelector('.opticam-cm-clear');
  if (clear) clear.disabled = chosen.length !== 2;
  const live = el.querySelector('.opticam-cm-live');
  if (live) live.textContent = model.get('status');
  if (!el.contains(document.activeElement)) roving(el);
}
function move(el, event) {
  const b = event.target.closest('button.opticam-cm-cell');
  if (!b || !KEYS.includes(event.key)) return;
  const r = Number(b.dataset.r), c = Number(b.dataset.c);
  const rows = Number(el.dataset.rows), cols = Number(el.dataset.cols);
  const to = {ArrowLeft: [r, c - 1], ArrowRight: [r, c + 1], ArrowUp: [r - 1, c],
              ArrowDown: [r + 1, c], Home: [r, 0], End: [r, cols - 1]}[event.key];
  event.preventDefault();
  event.stopPropagation();
  if (to[0] < 0 || to[0] >= rows || to[1] < 0 || to[1] >= cols) return;
  const next = el.querySelector(`button[data-r="${to[0]}"][data-c="${to[1]}"]`);
  if (!next) return;
  for (const x of cells(el)) x.tabIndex = x === next ? 0 : -1;
  next.focus();
}
function th(text, scope) {
  const h = document.createElement('th');
  h.scope = scope;
  h.textContent = text;
  h.title = text;
  return h;
}
function draw(el, model) {
  const d = model.get('data') || {};
  const focused = document.activeElement && el.contains(document.activeElement) ?
    document.activeElement.dataset : null;
  const t = d.true || [], p = d.predicted || [];
  const table = document.createElement('table');
  table.className = 'opticam-cm-table';
  const caption = document.createElement('caption');
  caption.textContent = d.caption || '';
  table.appendChild(caption);
  if (t.length && p.length) {
    const head = table.createTHead().insertRow();
    head.appendChild(th('true \\u2193 · predicted \\u2192', 'col'));
    for (const name of p) head.appendChild(th(name, 'col'));
    const body = table.createTBody();
    const peak = Math.max(1, ...d.counts.flat());
    const same = new Set((d.same || []).map((pair) => JSON.stringify(pair)));
    t.forEach((tname, r) => {
      const row = body.insertRow();
      row.appendChild(th(tname, 'row'));
      p.forEach((pname, c) => {
        const n = d.counts[r][c], b = document.createElement('button');
        const diagonal = same.has(JSON.stringify([tname, pname]));
        b.className = 'opticam-cm-cell' + (diagonal ? ' opticam-cm-diagonal' : '');
        b.textContent = String(n);
        b.setAttribute('aria-label', d.names[r][c]);
        b.title = d.names[r][c];
        b.dataset.true = tname; b.dataset.predicted = pname;
        b.dataset.r = r; b.dataset.c = c;
        b.setAttribute('data-lm-suppress-shortcuts', 'true');
        if (!n) b.setAttribute('aria-disabled', 'true');
        b.style.setProperty('--opticam-cm-share', `${Math.round(8 + 32 * n / peak)}%`);
        b.addEventListener('click', () => {
          if (!n) return;
          for (const x of cells(el)) x.tabIndex = x === b ? 0 : -1;
          model.set('chosen', [tname, pname]);
          model.save_changes();
        });
        row.insertCell().appendChild(b);
      });
    });
  }
  el.dataset.rows = t.length; el.dataset.cols = p.length;
  el.querySelector('.opticam-cm-body').replaceChildren(table);
  mark(el, model);
  if (focused && focused.r !== undefined) {
    const again = el.querySelector(`button[data-true="${CSS.escape(focused.true)}"]` +
                                   `[data-predicted="${CSS.escape(focused.predicted)}"]`);
    if (again) { for (const x of cells(el)) x.tabIndex = x === again ? 0 : -1; again.focus(); }
  }
}
function render({model, el}) {
  el.classList.add('opticam-confusion');
  el.innerHTML = '<div class="opticam-cm-body"></div><div class="opticam-cm-bar">' +
    '<button class="opticam-cm-clear" type="button">Show all cells</button>' +
    '<span class="opticam-cm-live" role="status" aria-live="polite"></span></div>';
  el.querySelector('.opticam-cm-clear').addEventListener('click', () => {
    model.set('chosen', []);
    model.save_changes();
  });
  el.addEventListener('keydown', (e) => move(el, e));
  model.on('change:data', () => draw(el, model));
  model.on('change:chosen', () => mark(el, model));
  model.on('change:status', () => mark(el, model));
  draw(el, model);
}
export default { render };
"""

#: The matrix's stylesheet: theme colours (light and dark), a tint per count (blue on the
#: diagonal: right predictions; red off it), names wrapped in narrow columns, the chosen cell
#: outlined.
CSS = """
.opticam-confusion { font-size: var(--jp-ui-font-size1, 13px);
  color: var(--jp-ui-font-color1, #1a1a1a); max-width: 100%; overflow-x: auto; }
.opticam-confusion .opticam-cm-table { border-collapse: collapse; }
.opticam-confusion caption { caption-side: top; text-align: left; padding-bottom: 4px;
  font-size: var(--jp-ui-font-size0, 11px); line-height: 1.35; }
.opticam-confusion th { font-weight: 600; font-size: var(--jp-ui-font-size0, 11px);
  max-width: 88px; padding: 1px 4px; line-height: 1.15; overflow-wrap: anywhere;
  text-align: left; vertical-align: bottom; }
.opticam-confusion tbody th { text-align: right; vertical-align: middle; }
.opticam-confusion td { padding: 1px; }
.opticam-confusion .opticam-cm-cell { min-width: 36px; height: 22px; padding: 0 4px;
  font: inherit; color: inherit; cursor: pointer;
  border: 1px solid var(--jp-border-color2, #bdbdbd); border-radius: 2px;
  background: color-mix(in srgb, var(--jp-error-color1, #c62828) var(--opticam-cm-share),
    var(--jp-layout-color0, #fff)); }
.opticam-confusion .opticam-cm-diagonal {
  background: color-mix(in srgb, var(--jp-brand-color1, #1976d2) var(--opticam-cm-share),
    var(--jp-layout-color0, #fff)); }
.opticam-confusion .opticam-cm-cell[aria-disabled='true'] { cursor: default;
  background: transparent; border-color: transparent;
  color: var(--jp-ui-font-color2, #616161); }
.opticam-confusion .opticam-cm-cell[aria-pressed='true'] { font-weight: 700;
  outline: 2px solid var(--jp-brand-color1, #1565c0); outline-offset: -2px; }
.opticam-confusion .opticam-cm-cell:focus-visible { outline: 2px solid
  var(--jp-brand-color1, #1565c0); outline-offset: 1px; }
.opticam-confusion .opticam-cm-bar { display: flex; flex-wrap: wrap; gap: 8px;
  align-items: center; margin-top: 4px; }
.opticam-confusion .opticam-cm-clear { font: inherit; padding: 1px 8px; cursor: pointer; }
"""


class ConfusionMatrix(anywidget.AnyWidget):
    """A clickable confusion matrix (see the module): shows a :class:`~.confusion.Confusion`.

    Attributes:
        data: The matrix as JSON (:meth:`Confusion.as_dict
            <opticam_widgets.explorer.confusion.Confusion.as_dict>`).
        chosen: ``[true, predicted]`` of the chosen cell, or ``[]`` (set by a click).
        status: The polite live line (what the grid shows).
    """

    _esm = ESM
    _css = CSS
    data = Dict().tag(sync=True)
    chosen = List(Unicode(), maxlen=2).tag(sync=True)
    status = Unicode("").tag(sync=True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.layout.width = "100%"
        self.matrix = Confusion()

    @property
    def cell(self) -> tuple[str, str] | None:
        """``(true, predicted)`` of the chosen cell, or ``None``."""
        return (self.chosen[0], self.chosen[1]) if len(self.chosen) == 2 else None

    def update(self, matrix: Confusion) -> None:
        """Show ``matrix`` (the chosen cell stays chosen, shown or not)."""
        self.matrix = matrix
        self.data = matrix.as_dict()

    def choose(self, true: str, predicted: str) -> None:
        """Choose a cell, as a click on it does."""
        self.chosen = [str(true), str(predicted)]

    def clear(self) -> None:
        """Clear the chosen cell, as **Show all cells** does."""
        self.chosen = []

    def say(self, rows: int) -> None:
        """Set the live line after the grid was filtered to ``rows`` rows."""
        cell = self.cell
        self.status = ("" if cell is None else
                       f"Grid filtered to {cell_name(cell[0], cell[1], rows)}.")
