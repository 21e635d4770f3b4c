"""Every HTML text the widget shows: status line, metrics line, comparison captions.

One home for the wording and for escaping: each function takes plain values, escapes every
dynamic part (class names, error messages, paths come from users) and returns HTML ready for an
``ipywidgets.HTML``. Only this module builds HTML.

Example:
    >>> esc("<b>&")
    '&lt;b&gt;&amp;'
    >>> "<td>12.5%</td>" in metrics_html({"AD": 12.5, "AG": 3.0})
    True
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

__all__ = [
    "GREETING",
    "brush_html",
    "caption_html",
    "contrast_titles",
    "diverging_bar_html",
    "error_html",
    "esc",
    "fmt",
    "interrupted_html",
    "label_html",
    "metrics_html",
    "sanity_html",
    "not_started_html",
    "note_html",
    "prompt_html",
    "result_html",
    "saved_html",
    "settings_html",
    "status_html",
    "step_html",
    "tone_style",
    "toned",
]

#: Text tones other than the theme's own text colour: a plain colour first (front ends without
#: ``color-mix`` or JupyterLab's theme variables), then the theme's colour mixed toward the
#: theme's text colour, which reads at 4.5:1 or more on JupyterLab's light and dark themes.
TONES: dict[str, tuple[str, str]] = {
    "muted": ("#595959", "color-mix(in srgb, var(--jp-ui-font-color1, #000) 72%, transparent)"),
    "warning": ("#8a5300", "color-mix(in srgb, var(--jp-warn-color1, #f57c00) 60%, "
                           "var(--jp-ui-font-color1, #000))"),
    "error": ("#b00020", "color-mix(in srgb, var(--jp-error-color1, #d32f2f) 65%, "
                         "var(--jp-ui-font-color1, #000))"),
}


def tone_style(tone: str) -> str:
    """The inline CSS ``color`` of a tone (see :data:`TONES`).

    Example:
        >>> tone_style("muted").startswith("color:#595959;color:color-mix(")
        True
    """
    if tone not in TONES:
        raise ValueError(f"`tone` must be one of {', '.join(TONES)}, got {tone!r}")
    plain, themed = TONES[tone]
    return f"color:{plain};color:{themed}"


def toned(tone: str, content: str) -> str:
    """``content`` (HTML, already escaped) in a span of the given tone."""
    return f"<span style='{tone_style(tone)}'>{content}</span>"


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
    """The status line: ``message`` (HTML, already escaped) and muted notes (plain text).

    Example:
        >>> status_html("ok", ["a<b"]).startswith("<span>ok</span><br><span style='color:")
        True
    """
    grey = "".join(f"<br>{toned('muted', esc(n))}" for n in notes)
    return f"<span>{message}</span>{grey}"


def label_html(names: Sequence[str] | None, target: int | None) -> str:
    """``<b>name</b> (index)`` of a class, or ``""`` when unknown."""
    if target is None or names is None:
        return ""
    return f"<b>{esc(names[target])}</b> ({target})"


def error_html(exc: BaseException) -> str:
    """An error, in red: ``Error: Type: message``."""
    return toned("error", f"<b>Error</b>: {esc(type(exc).__name__)}: {esc(exc)}")


def interrupted_html(label: str) -> str:
    """A run interrupted by the user (Ctrl-C / the kernel's interrupt)."""
    return f"{label} · interrupted (KeyboardInterrupt); press <b>Run</b> to optimize again."


def not_started_html(label: str) -> str:
    """A run stopped while it waited for the previous one to end: it never started."""
    return f"{label}: stopped before it started; press <b>Run</b> to optimize the map."


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
        progress: The engine's :class:`~opticam_widgets.engine.explainer.OptiCAMProgress`.
    """
    return (f"{label} · iteration {progress.step}/{progress.max_iter} · score "
            f"{fmt(float(progress.current_score[0]))} (best "
            f"{fmt(float(progress.best_score[0]))}) · {progress.elapsed_s:.1f} s")


def result_html(label: str, result: Any, iterations: int) -> str:
    """A finished, early-stopped or stopped optimisation, with its scores.

    Args:
        label: :func:`label_html` of the class.
        result: The :class:`~opticam_widgets.engine.explainer.OptiCAMResult`.
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


#: The faithfulness metrics the widget shows, with what each means (the table's tooltips).
METRICS = (
    ("AD", "AD ↓", "Average Drop: how much the class probability falls when the model sees "
                   "only the image masked by the map (x⊙S); lower is better"),
    ("AG", "AG ↑", "Average Gain: how much the class probability rises on x⊙S; higher is "
                   "better"),
)


#: The yardsticks added after a run (:mod:`~opticam_widgets.widget.yardstick`), shown once a
#: column has them: ``(key, label, meaning, unit)``.
YARDSTICK_ROWS = (
    ("AD_mean", "AD ↓ mean fill", "Average Drop with the hidden pixels filled with the "
                                  "dataset's mean colour instead of black; lower is better", "%"),
    ("AG_mean", "AG ↑ mean fill", "Average Gain with the mean-colour fill; higher is better", "%"),
    ("AD_blur", "AD ↓ blur fill", "Average Drop with the hidden pixels taken from a blurred "
                                  "copy of the photo; lower is better", "%"),
    ("AG_blur", "AG ↑ blur fill", "Average Gain with the blurred fill; higher is better", "%"),
    ("ROAD", "ROAD ↑", "ROAD (remove and debias), at the median: probability change when the "
                       "least salient half of the pixels is imputed from its neighbours, minus "
                       "that when the most salient half is, halved; higher is better", ""),
    ("deletion_black", "deletion ↓", "Deletion AUC: the class probability as the most salient "
                                     "pixels are blacked out first; lower is better", ""),
)


def metrics_html(metrics: dict | None, others: Sequence[tuple[str, dict | None]] = (),
                 first: str = "Opti-CAM") -> str:
    """One small table of the maps' metrics: ``first``'s column, then ``(name, metrics)``'s.

    Each metric's row header carries a tooltip saying what it means and which way is better;
    a column whose metrics are missing says why. The yardsticks (:data:`YARDSTICK_ROWS`)
    appear once a column has them (``…`` in the others while they are computed).

    Example:
        >>> html = metrics_html({"AD": 12.0, "AG": 3.5}, [("gradcam", {"AD": 30.0, "AG": 1.0})])
        >>> "<th scope='col'>gradcam</th>" in html and "30.0%" in html
        True
        >>> "unavailable: no &lt;GPU&gt;" in metrics_html({"error": "no <GPU>"})
        True
    """
    if not metrics:
        return ""
    columns = [(first, metrics), *others]
    head = "".join(f"<th scope='col'>{esc(name)}</th>" for name, _ in columns)
    rows = []
    extra = any(m and "ROAD" in m or m and "AD_mean" in m for _, m in columns)
    shown = [(*row, "%") for row in METRICS] + (list(YARDSTICK_ROWS) if extra else [])
    for key, label, meaning, unit in shown:
        cells = "".join(f"<td>{cell(m, key, unit)}</td>" for _, m in columns)
        rows.append(f"<tr><th scope='row' title='{esc(meaning)}'><abbr title='{esc(meaning)}'>"
                    f"{label}</abbr></th>{cells}</tr>")
    name = "faithfulness yardsticks" if extra else "faithfulness"
    return (f"<table class='opticam-metrics' aria-label='{name}' "
            f"style='border-collapse:collapse'>"
            f"<caption style='text-align:left'>{name} (hover a metric)</caption>"
            f"<tr><td></td>{head}</tr>{''.join(rows)}</table>")


def cell(metrics: dict | None, key: str, unit: str = "%") -> str:
    """A metric's cell: ``12.3%`` (``0.123`` without a unit), ``…`` while unknown, or why not."""
    if not metrics:
        return "…"
    if "error" in metrics:
        return toned("warning", f"unavailable: {esc(metrics['error'])}")
    value = metrics.get(key)
    if value is None and key in ("AD", "AG"):
        return "–"
    if value is None:  # a yardstick still being computed, or why it is missing
        why = metrics.get("yardsticks_error")
        return toned("warning", f"unavailable: {esc(why)}") if why else "…"
    return f"{float(value):.1f}%" if unit == "%" else f"{float(value):.3f}"


def sanity_html(layers: Sequence[str], spearman: Sequence[float], ssim: Sequence[float],
                png: bytes) -> str:
    """The sanity check: the randomised maps (a picture), their scores (a table), a verdict.

    Example:
        >>> html = sanity_html(["fc", "conv"], [0.8, 0.1], [0.7, 0.2], b"png")
        >>> "<th scope='row'><code>conv</code></th><td>0.10</td><td>0.20</td>" in html
        True
        >>> "passes" in html
        True
    """
    import base64

    alt = ("Maps of the cascading randomisation: the original map, then the map with the "
           "model's weights randomised from the top block down to each block named; below, "
           "their rank correlation and SSIM with the original.")
    src = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
    rows = "".join(f"<tr><th scope='row'><code>{esc(name)}</code></th><td>{r:.2f}</td>"
                   f"<td>{q:.2f}</td></tr>" for name, r, q in zip(layers, spearman, ssim))
    last = float(spearman[-1]) if len(spearman) else 1.0
    verdict = (toned("muted", "passes: the map changes as the model's weights are randomised")
               if last < 0.5 else
               toned("warning", f"warning: with every block randomised the map still ranks "
                                f"pixels alike (rank correlation {last:.2f}): it may show the "
                                "image more than the model"))
    return (f"<figure role='group' aria-label='sanity check' style='margin:4px 0'>"
            f"<img src='{src}' alt='{esc(alt)}' style='max-width:100%'>"
            f"<figcaption>{verdict}</figcaption></figure>"
            f"<table class='opticam-metrics' aria-label='sanity check scores'>"
            f"<caption style='text-align:left'>similarity with the original map, the model "
            f"randomised down to (top first)</caption><tr><td></td><th scope='col'>rank "
            f"correlation</th><th scope='col'>SSIM</th></tr>{rows}</table>")


def caption_html(method: str, layer: str, metrics: dict | None = None) -> str:
    """The comparison panel's title: method and layer (its metrics are in the table).

    Example:
        >>> caption_html("gradcam", "bn2")
        '<b>gradcam</b> map · same layer <code>bn2</code>'
    """
    return f"<b>{esc(method)}</b> map · same layer <code>{esc(layer)}</code>"


def note_html(message: str, tone: str = "muted") -> str:
    """A plain-text message (escaped here) in a tone of :data:`TONES`."""
    return toned(tone, esc(message))


def brush_html(rows: Sequence[tuple[str, bool, float, float]], hidden: float) -> str:
    """The brush's probabilities: ``(class name, shown?, before, after)`` rows, as a list.

    Example:
        >>> html = brush_html([("cat", True, 0.62, 0.14)], 0.2)
        >>> "<b>cat</b>: 62.0% → 14.0% (−48.0 points)" in html and "20% of the photo" in html
        True
    """
    items = []
    for name, shown, before, after in rows:
        label = f"<b>{esc(name)}</b>" if shown else esc(name)
        delta = (after - before) * 100
        sign = "+" if delta >= 0 else "−"
        items.append(f"<li>{label}: {before:.1%} → {after:.1%} ({sign}{abs(delta):.1f} "
                     "points)</li>")
    head = (f"{hidden:.0%} of the photo filled" if hidden > 0 else "the whole photo")
    return (f"<div>Class probabilities, {head}:</div><ul aria-label='class probabilities "
            f"before and after the brush' style='margin:2px 0;padding-left:1.2em'>"
            f"{''.join(items)}</ul>")


def contrast_titles(a: str, b: str) -> tuple[str, str, str]:
    """The titles of the maps of classes ``a`` and ``b`` and of their difference."""
    return (f"Opti-CAM map of <b>{esc(a)}</b>", f"Opti-CAM map of <b>{esc(b)}</b>",
            f"<b>{esc(a)}</b> − <b>{esc(b)}</b> (difference)")


def diverging_bar_html(a: str, b: str) -> str:
    """The difference's colour scale: blue (more for ``b``), white, red (more for ``a``).

    Example:
        >>> "more for cat" in diverging_bar_html("cat", "dog")
        True
    """
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    stops = ", ".join(to_hex(colormaps["RdBu_r"](t / 8)) for t in range(9))
    label = esc(f"colour scale: blue, more for {b}; white, as much for both; red, more for {a}")
    return (f"<span role='img' aria-label='{label}' style='display:inline-flex;"
            "align-items:center;gap:4px;font-size:12px;flex-wrap:wrap'>"
            f"more for {esc(b)}<span style='display:inline-block;width:90px;height:10px;"
            f"border:1px solid #888;background:linear-gradient(to right, {stops})'></span>"
            f"more for {esc(a)}</span>")
