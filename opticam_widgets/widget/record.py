"""A map on screen described: its record, the code that reproduces it, its download links.

The record is the JSON sidecar of the PNG (model, layer, class, settings, scores, metrics).
The download is plain HTML (an anchor with a ``data:`` URL and a ``download`` attribute), so
it works in JupyterLab, Notebook 7 and Voilà without any JavaScript and without writing on the
server: the browser receives the bytes and saves them where its user chooses.

Example:
    >>> link = download_link("a.json", "application/json", b"{}", "settings")
    >>> link.startswith('<a download="a.json" href="data:application/json;base64,e30="')
    True
"""

from __future__ import annotations

import base64
import json
from typing import Any

from .messages import esc

__all__ = ["download_link", "map_record", "preprocess_spec", "record_json", "reproduce_code"]

#: Model names that are the embedded default model (loaded by ``load_default_model()``).
DEFAULT_MODELS = ("efficientnet_lite0",)


def preprocess_spec(pre: Any) -> dict | None:
    """A preprocessing's ``size``, ``mean`` and ``std`` as plain values.

    ``None`` for a custom ``transform`` (which code cannot spell).

    Example:
        >>> from opticam_widgets.inputs.preprocess import Preprocess
        >>> preprocess_spec(Preprocess(size=(32, 32), mean=(0, 0, 0), std=(1, 1, 1)))
        {'size': [32, 32], 'mean': [0.0, 0.0, 0.0], 'std': [1.0, 1.0, 1.0]}
    """
    if getattr(pre, "transform", None) is not None:
        return None
    return {"size": None if pre.size is None else [int(v) for v in pre.size],
            "mean": [float(v) for v in pre.mean], "std": [float(v) for v in pre.std]}


def map_record(*, model: str, entry: Any, label: str | None, image: str,
               source: str | None, style: tuple[float, str, str],
               preprocess: dict | None = None) -> dict:
    """The JSON sidecar of a map: model, layer, target, settings, scores and metrics.

    Args:
        model: The model's name.
        entry: The :class:`~opticam_widgets.widget.state.Entry` shown.
        label: The class name (``None`` when unknown).
        image: The image's name.
        source: The file the image was read from, or ``None``.
        style: ``(opacity, colormap, view)`` of the picture.
        preprocess: :func:`preprocess_spec` of the engine's preprocessing.
    """
    result, key = entry.result, entry.key
    metrics = entry.metrics or {}
    return {
        "tool": "opticam-widgets (Opti-CAM, arXiv 2301.07002)",
        "model": model, "preprocess": preprocess, "layer": result.layer,
        "image": image, "source": source,
        "target": {"index": int(result.target[0]), "label": label},
        "settings": {"max_iter": key.iterations, "lr": key.lr, "convention": key.convention,
                     "tol": key.overrides()["tol"], "patience": key.plateau[1],
                     "schedule": key.optimizer, "score": result.score},
        "run": {"iterations": int(result.iterations), "cancelled": bool(result.cancelled),
                "elapsed_s": round(float(result.elapsed_s), 3)},
        "scores": {"initial": float(result.initial_score[0]),
                   "final": float(result.final_score[0]),
                   "unmasked": float(result.original_score[0])},
        "metrics": {k: (float(v) if isinstance(v, (int, float)) else str(v))
                    for k, v in metrics.items()},
        "picture": {"opacity": style[0], "colormap": style[1], "view": style[2],
                    "size": [int(result.size[0]), int(result.size[1])]},
    }


def reproduce_code(record: dict) -> str:
    """The Python code whose ``explain`` call reproduces the map of ``record``.

    Example:
        >>> rec = {"model": "efficientnet_lite0", "layer": "bn2", "image": "cat.jpg",
        ...        "source": "photos/cat.jpg",
        ...        "target": {"index": 281, "label": "tabby"},
        ...        "settings": {"max_iter": 100, "lr": 0.2, "convention": "constructive",
        ...                     "tol": 0.001, "patience": 10, "schedule": "paper"}}
        >>> print(reproduce_code(rec).splitlines()[-1])
        result = cam.explain(image, target=281)  # tabby
    """
    s = record["settings"]
    if record["model"] in DEFAULT_MODELS:
        head = ["from opticam_widgets import OptiCAM, load_default_model", "",
                "model = load_default_model()"]
    else:
        head = ["from opticam_widgets import OptiCAM", "",
                f"# model = ...  # your {record['model']} (the widget's model)"]
    source = record.get("source")
    load = (f"image = {source!r}  # a path, a PIL image, an array or a tensor"
            if source else f"# image = ...  # the widget's {record['image']}")
    extra = f", optimizer={s['schedule']!r}" if s.get("schedule", "paper") != "paper" else ""
    pre = record.get("preprocess")
    if record["model"] not in DEFAULT_MODELS and pre is not None:
        extra += f",\n              preprocess={pre!r}"
    label = record["target"].get("label")
    return "\n".join([
        *head, load,
        f"cam = OptiCAM(model, target_layer={record['layer']!r}, max_iter={s['max_iter']}, "
        f"lr={s['lr']!r},",
        f"              convention={s['convention']!r}, tol={s['tol']!r}, "
        f"patience={s['patience']}{extra})",
        f"result = cam.explain(image, target={record['target']['index']})"
        + (f"  # {label}" if label else ""),
    ])


def download_link(name: str, mime: str, data: bytes, text: str) -> str:
    """An HTML anchor that makes the browser download ``data`` as ``name`` (no server write).

    Args:
        name: The file name offered to the browser.
        mime: The media type.
        data: The file's bytes.
        text: The link's visible text (plain; escaped here).
    """
    url = f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
    return (f'<a download="{esc(name)}" href="{url}" title="download {esc(name)}">'
            f"{esc(text)}</a>")


def record_json(record: dict) -> bytes:
    """The sidecar's bytes (UTF-8, indented)."""
    return json.dumps(record, indent=2, ensure_ascii=False).encode("utf-8")
