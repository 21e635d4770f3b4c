"""Every HTML text the widget shows: status line, metrics line, comparison captions.

One home for the wording and for escaping: each function takes plain values, escapes every
dynamic part (class names, error messages, paths come from users) and returns HTML ready for an
``ipywidgets.HTML``. Only this module builds HTML.

Example:
    >>> esc("<b>&")
    '&lt;b&gt;&amp;'
    >>> metrics_html({"AD": 12.5, "AG": 3.0}).endswith("AD 12.5% · AG 3.0%</span>")
    True
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

__all__ = [
    "GREETING",
    "caption_html",
    "error_html",
    "esc",
    "fmt",
    "interrupted_html",
    "label_html",
    "metrics_html",
    "note_html",
    "prompt_html",
    "result_html",
    "saved_html",
    "settings_html",
    "status_html",
    "step_html",
]

#: Status line of a widget without images.
GREETING = "Give an image: <code>widget.show(img)</code>"


def esc(value: Any) -> str:
    """``str(value)`` escaped for HTML text and attributes."""
    return html.escape(str(value), quote=True)


def fmt(value: float) -> str:
    """A score or learning rate with 4 significant digits.

    Example:
        >>> fmt(0.123456), fmt(1234567.0)
        ('0.1235', '1.235e+06')
    """
    return f"{value:.4g}"


def status_html(message: str, notes: Sequence[str] = ()) -> str:
    """The status line: ``message`` (HTML, already escaped) and grey notes (plain text).

    Example:
        >>> status_html("ok", ["a<b"])
        "<span>ok</span><br><span style='color:#777'>a&lt;b</span>"
    """
    grey = "".join(f"<br><span style='color:#777'>{esc(n)}</span>" for n in notes)
    return f"<span>{message}</span>{grey}"


def label_html(names: Sequence[str] | None, target: int | None) -> str:
    """``<b>name</b> (index)`` of a class, or ``""`` when unknown."""
    if target is None or names is None:
        return ""
    return f"<b>{esc(names[target])}</b> ({target})"


def error_html(exc: BaseException) -> str:
    """An error, in red: ``Error: Type: message``."""
    return (f"<span style='color:#c00'><b>Error</b>: "
            f"{esc(type(exc).__name__)}: {esc(exc)}</span>")


def interrupted_html(label: str) -> str:
    """A run interrupted by the user (Ctrl-C / the kernel's interrupt)."""
    return f"{label} · interrupted (KeyboardInterrupt); press <b>Run</b> to optimize again."


def prompt_html(label: str) -> str:
    """No map yet for this class: invite to press Run."""
    return f"{label}: press <b>Run</b> to optimize the map."


def settings_html(iterations: int, lr: float, convention: str) -> str:
    """Settings changed without a cached result: invite to press Run."""
    return (f"Settings changed: press <b>Run</b> to optimize with {int(iterations)} iterations, "
            f"lr {fmt(lr)}, {esc(convention)}.")


def step_html(label: str, progress: Any) -> str:
    """A running optimisation: iteration, score, best score, elapsed time.

    Args:
        label: :func:`label_html` of the class.
        progress: The engine's :class:`~opticam_widgets.explainer.OptiCAMProgress`.
    """
    return (f"{label} · iteration {progress.step}/{progress.max_iter} · score "
            f"{fmt(float(progress.current_score[0]))} (best "
            f"{fmt(float(progress.best_score[0]))}) · {progress.elapsed_s:.1f} s")


def result_html(label: str, result: Any, iterations: int) -> str:
    """A finished, early-stopped or stopped optimisation, with its scores.

    Args:
        label: :func:`label_html` of the class.
        result: The :class:`~opticam_widgets.explainer.OptiCAMResult`.
        iterations: Iterations requested.
    """
    if result.cancelled:
        how = f"stopped at iteration {result.iterations}/{iterations} (best map so far)"
    elif result.iterations < iterations:
        how = f"converged after {result.iterations} iterations (early stop)"
    else:
        how = f"{result.iterations} iterations"
    return (f"{label} · {how} · score {fmt(float(result.initial_score[0]))} → "
            f"{fmt(float(result.final_score[0]))} (unmasked "
            f"{fmt(float(result.original_score[0]))}, {esc(result.score)}, "
            f"{esc(result.convention)}) · {result.elapsed_s:.1f} s")


def saved_html(path: Any) -> str:
    """A file was written."""
    return f"Saved <code>{esc(path)}</code>"


def metrics_html(metrics: dict | None) -> str:
    """One line "AD x% · AG y%", or why the metrics are missing.

    Example:
        >>> metrics_html({"error": "no <GPU>"})
        "<span style='color:#a60'>metrics unavailable: no &lt;GPU&gt;</span>"
    """
    if not metrics:
        return ""
    if "error" in metrics:
        return f"<span style='color:#a60'>metrics unavailable: {esc(metrics['error'])}</span>"
    return ("<span title='Average Drop (lower is better) and Average Gain (higher is better) "
            f"of the class probability on x⊙S'>AD {metrics['AD']:.1f}% · "
            f"AG {metrics['AG']:.1f}%</span>")


def caption_html(method: str, layer: str, metrics: dict | None) -> str:
    """The comparison panel's caption: method, layer, metrics."""
    return (f"<b>{esc(method)}</b> · same layer <code>{esc(layer)}</code><br>"
            f"{metrics_html(metrics)}")


def note_html(message: str, color: str = "#555") -> str:
    """A plain-text message in a colour (escaped here)."""
    return f"<span style='color:{esc(color)}'>{esc(message)}</span>"
