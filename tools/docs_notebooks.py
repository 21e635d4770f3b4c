"""The tutorials of the documentation site: the committed notebooks, executed, with a Binder link.

The site shows every notebook executed, offline. The executed copy is cached under
``.cache/docs-notebooks/``, keyed by the notebook's bytes and the package's sources (a rebuild
with nothing changed executes nothing). ``make test`` runs the notebooks under nbval first, and
its plugin (``tools/nbval_keep.py``) writes each run whose cells all passed into this cache, so
the site build that follows executes nothing; a notebook not found there is executed here with
nbclient, two at a time. Widget state is not stored: the page shows each widget's saved picture
(the PNG that ``OptiCAMWidget.show`` puts beside the live view), so the site needs no widget
JavaScript from a CDN. ``OPTICAM_DOCS_EXECUTE=0`` renders the notebooks as committed (a quick
draft build).
"""

from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
#: The executed copies (``OPTICAM_DOCS_CACHE`` elsewhere: a test's own folder).
CACHE = Path(os.environ.get("OPTICAM_DOCS_CACHE") or ROOT / ".cache" / "docs-notebooks")
BINDER = ("https://mybinder.org/v2/gh/opticam-widgets/opticam-widgets/main"
          "?urlpath=lab/tree/notebooks/{name}")
#: The MIME type of a widget's live view (ipywidgets).
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
#: Seconds one cell may take when a notebook is executed for the site.
CELL_TIMEOUT = 300
#: Where the kernels' HTTP(S) requests go: a closed loopback port, so a download fails at once.
NO_NETWORK = "http://127.0.0.1:9"
#: The kernels' environment: two run side by side, one thread each (the machine has 2 cores),
#: and offline (a notebook that would download, like 04's torchvision example, takes its
#: offline branch wherever the site is built; Hugging Face libraries in offline mode).
OFFLINE_ENV = {"OPTICAM_QUIET": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
               "HTTP_PROXY": NO_NETWORK, "HTTPS_PROXY": NO_NETWORK, "http_proxy": NO_NETWORK,
               "https_proxy": NO_NETWORK, "ALL_PROXY": NO_NETWORK, "NO_PROXY": "",
               "no_proxy": "", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
KERNEL_ENV = {**os.environ, **OFFLINE_ENV}


def sources_key(path: Path) -> str:
    """A hash of the notebook and every source file of the package (the cache key)."""
    digest = hashlib.sha256(path.read_bytes())
    for source in sorted((ROOT / "opticam_widgets").rglob("*.py")):
        digest.update(source.relative_to(ROOT).as_posix().encode())
        digest.update(source.read_bytes())
    return digest.hexdigest()[:16]


def binder_cell(name: str) -> dict:
    """A Markdown cell with the notebook's Binder link (a text link: no remote badge image)."""
    url = BINDER.format(name=name)
    text = (f"[Open this notebook live on Binder]({url}) · "
            f"source: `notebooks/{name}` in the repository · run it locally with `make lab`.")
    return {"cell_type": "markdown", "metadata": {}, "source": text}


def execute(path: Path) -> dict:
    """Execute one notebook in a fresh kernel, offline; the executed notebook as a dict."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}},
                   store_widget_state=False).execute(env=KERNEL_ENV)
    return json.loads(nbformat.writes(nb))


def cached_path(path: Path) -> Path:
    """Where the executed copy of the notebook ``path`` is cached (for its sources now)."""
    return CACHE / f"{path.stem}-{sources_key(path)}.ipynb"


def keep(path: Path, nb: dict) -> Path:
    """Cache ``nb`` as the executed copy of the notebook ``path``; older copies are removed."""
    cached = cached_path(path)
    CACHE.mkdir(parents=True, exist_ok=True)
    for old in CACHE.glob(f"{path.stem}-*.ipynb"):
        old.unlink()
    tmp = cached.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(nb))
    tmp.replace(cached)
    return cached


def executed(path: Path) -> dict:
    """The executed notebook, from the cache when neither it nor the package changed."""
    cached = cached_path(path)
    if cached.exists():
        return json.loads(cached.read_text())
    nb = execute(path)
    keep(path, nb)
    return nb


class Displays:
    """Outputs by display id, updated in place as ``update_display_data`` messages arrive.

    nbclient updates an output displayed with a ``display_id`` when the kernel later sends an
    update for it (a widget's saved picture, once its run has ended); a test runner that keeps
    only each cell's own messages (nbval) shows the first version. Feed every iopub message to
    :meth:`seen` before the runner reads it: its ``data`` and ``metadata`` become nodes that an
    update rewrites in place, wherever the runner has put them.

    Example:
        >>> shown = Displays()
        >>> first = {"msg_type": "display_data", "content": {
        ...     "data": {"text/plain": "old"}, "metadata": {}, "transient": {"display_id": "p"}}}
        >>> shown.seen(first)
        >>> data = first["content"]["data"]
        >>> shown.seen({"msg_type": "update_display_data", "content": {
        ...     "data": {"text/plain": "new"}, "metadata": {}, "transient": {"display_id": "p"}}})
        >>> data["text/plain"]
        'new'
    """

    def __init__(self) -> None:
        self._outputs: dict[str, list[dict]] = {}

    def seen(self, msg: dict) -> None:
        """Take one iopub message (before the runner reads it)."""
        from nbformat import from_dict

        kind, content = msg.get("msg_type"), msg.get("content", {})
        display_id = (content.get("transient") or {}).get("display_id")
        if kind in ("display_data", "execute_result"):
            content["data"] = from_dict(content.get("data", {}))
            content["metadata"] = from_dict(content.get("metadata", {}))
            if display_id is not None:
                self._outputs.setdefault(display_id, []).append(content)
        elif kind == "update_display_data" and display_id is not None:
            for shown in self._outputs.get(display_id, []):
                for key in ("data", "metadata"):
                    shown[key].clear()
                    shown[key].update(from_dict(content.get(key, {})))


def tutorial_notebooks(run: bool | None = None) -> dict[str, str]:
    """Every committed notebook as the site shows it: file name -> notebook JSON text."""
    if run is None:
        run = os.environ.get("OPTICAM_DOCS_EXECUTE", "1") != "0"
    paths = sorted(NOTEBOOKS.glob("*.ipynb"))
    if run:
        with ThreadPoolExecutor(max_workers=2) as pool:
            books = list(pool.map(executed, paths))
    else:
        books = [json.loads(p.read_text()) for p in paths]
    pages = {}
    for path, nb in zip(paths, books):
        drop_live_views(nb)
        nb["cells"].insert(1 if _starts_with_title(nb) else 0, binder_cell(path.name))
        pages[path.name] = json.dumps(nb)
    return pages


def drop_live_views(nb: dict) -> dict:
    """Remove the widgets' live-view outputs, which cannot render without a kernel.

    Each widget's saved picture, the output right after its view, stays: that is what the page
    shows (instead of the view's text fallback, ``OptiCAMWidget(model=...)``).

    Example:
        >>> view = {"output_type": "display_data", "data": {WIDGET_VIEW: {}, "text/plain": "W"}}
        >>> picture = {"output_type": "display_data", "data": {"image/png": "..."}}
        >>> drop_live_views({"cells": [{"outputs": [view, picture]}]})["cells"][0]["outputs"]
        [{'output_type': 'display_data', 'data': {'image/png': '...'}}]
    """
    for cell in nb.get("cells", []):
        if "outputs" in cell:
            cell["outputs"] = [o for o in cell["outputs"] if WIDGET_VIEW not in o.get("data", {})]
    return nb


def _starts_with_title(nb: dict) -> bool:
    cells = nb.get("cells") or [{}]
    source = "".join(cells[0].get("source", ""))
    return cells[0].get("cell_type") == "markdown" and source.lstrip().startswith("# ")
