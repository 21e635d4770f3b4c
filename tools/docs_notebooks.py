"""The tutorials of the documentation site: the committed notebooks, executed, with a Binder link.

The notebooks are committed without outputs (``tests/test_notebooks_clean.py``), so the site
executes them at build time with nbclient, offline, two at a time, and caches the executed copy
under ``.cache/docs-notebooks/`` keyed by the notebook's bytes and the package's sources (a
rebuild with nothing changed executes nothing). Widget state is not stored: the page shows
each widget's saved picture (the PNG that ``OptiCAMWidget.show`` puts beside the live view),
so the site needs no widget JavaScript from a CDN. ``OPTICAM_DOCS_EXECUTE=0`` renders the
notebooks without outputs (a quick draft build).
"""

from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
CACHE = ROOT / ".cache" / "docs-notebooks"
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
KERNEL_ENV = {**os.environ, "OPTICAM_QUIET": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
              "HTTP_PROXY": NO_NETWORK, "HTTPS_PROXY": NO_NETWORK, "http_proxy": NO_NETWORK,
              "https_proxy": NO_NETWORK, "ALL_PROXY": NO_NETWORK, "NO_PROXY": "", "no_proxy": "",
              "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


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


def executed(path: Path) -> dict:
    """The executed notebook, from the cache when neither it nor the package changed."""
    cached = CACHE / f"{path.stem}-{sources_key(path)}.ipynb"
    if cached.exists():
        return json.loads(cached.read_text())
    nb = execute(path)
    CACHE.mkdir(parents=True, exist_ok=True)
    for old in CACHE.glob(f"{path.stem}-*.ipynb"):
        old.unlink()
    tmp = cached.with_suffix(".tmp")
    tmp.write_text(json.dumps(nb))
    tmp.replace(cached)
    return nb


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
