"""The ``opticam`` command (also ``python -m opticam_widgets``).

Usage::

    opticam explain IMG... [--target T]... | [--top K] [--max-iter N] [--lr X]
                    [--optimizer paper|fast] [--objective NAME]
                    [--convention constructive|destructive] [--out DIR]
                    [--model default|torchvision:NAME[:WEIGHTS|:none|:PATH]]
    opticam samples

``IMG`` is an image file or a sample photo ``sample:NAME`` (see ``opticam samples``). For each
image and class, ``explain`` writes ``<out>/<image>_<class>_<label>.png`` (the saliency map
over the image) and ``.npy`` (the map, float32 H×W in [0, 1], at the image's resolution), and
prints the top classes with their probabilities. Bad input gives exit status 2 and one line on
stderr (set the environment variable ``OPTICAM_DEBUG=1`` to get the traceback instead).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple, NoReturn

from ..support.defaults import (
    CONVENTIONS,
    DEFAULT_CONVENTION,
    DEFAULT_SCORE,
    SCORES,
)
from .args import TARGET_FORMS, add_run_options, positive_int, target_arg, unit_float

__all__ = ["main"]

PROG = "opticam"
#: Exit status for bad input (like argparse's own usage errors).
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class _UsageError(Exception):
    """A command-line mistake found after parsing (reported in one line, exit status 2)."""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on stderr (no usage block)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{PROG}: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``opticam`` command.

    Example:
        >>> build_parser().parse_args(["explain", "sample:chelsea", "--top", "2"]).top
        2
    """
    from .. import __version__

    parser = _Parser(
        prog=PROG,
        description="Opti-CAM saliency maps (arXiv 2301.07002) for CNN classifiers.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    ex = sub.add_parser(
        "explain",
        help="explain images: write overlay PNGs and .npy maps, print top classes",
        description="Explain each image with Opti-CAM and write, per image and class, an "
                    "overlay PNG and the saliency map as .npy (float32, H×W, in [0, 1]).",
    )
    ex.add_argument("images", nargs="+", metavar="IMG",
                    help="image file, or sample:NAME for a bundled photo (see `opticam samples`)")
    _add_target_options(ex)
    add_run_options(ex)
    ex.add_argument("--convention", choices=CONVENTIONS, default=DEFAULT_CONVENTION,
                    help="keep the class score on x⊙S (constructive, default) or remove it "
                         "from x⊙(1−S) (destructive)")
    ex.add_argument("--score", choices=SCORES, default=DEFAULT_SCORE,
                    help="score optimized: the raw logit (paper, default) or the softmax "
                         "probability")
    ex.add_argument("--out", type=Path, default=Path("opticam_out"), metavar="DIR",
                    help="output folder, created if needed (default: ./opticam_out)")
    ex.add_argument("--model", default="default", metavar="SPEC",
                    help="'default' (embedded EfficientNet-Lite0, offline), "
                         "'torchvision:NAME' (its pretrained weights: may download) or "
                         "'torchvision:NAME:WEIGHTS' (a weights name: may download; 'none': "
                         "random; or the path of a local weights file); NAME a classifier, a "
                         "detector (e.g. fasterrcnn_mobilenet_v3_large_320_fpn: --target box:, "
                         "detected) or a segmenter (e.g. lraspp_mobilenet_v3_large: --target "
                         "region:), which see images at their own size")
    ex.add_argument("--device", default=None,
                    help="torch device, e.g. cpu or cuda (default: cpu)")
    ex.add_argument("--alpha", type=unit_float, default=0.5,
                    help="heatmap opacity in the overlay PNG (default 0.5)")
    ex.add_argument("--cmap", default="jet",
                    help="matplotlib colormap of the overlay PNG (default jet)")
    ex.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    ex.set_defaults(func=_cmd_explain)

    samples = sub.add_parser("samples", help="list the bundled sample photos",
                             description="List the sample photos usable as IMG = sample:NAME.")
    samples.set_defaults(func=_cmd_samples)

    from ..dataset.cli import add_subcommands

    add_subcommands(sub)  # explain-dataset, report
    return parser


def _add_target_options(ex: argparse.ArgumentParser) -> None:
    """``--target`` (or ``--top``) and ``--multilabel``: what each map explains."""
    which = ex.add_mutually_exclusive_group()
    which.add_argument("--target", type=target_arg, action="append", metavar="T",
                       help="what to explain: a class index or label name (repeat for "
                            "several), or topK for the K most probable; default: top1; or "
                            + TARGET_FORMS)
    which.add_argument("--top", type=positive_int, metavar="K",
                       help="explain the K most probable classes of each image")
    ex.add_argument("--multilabel", action="store_true",
                    help="the model's head is multi-label (sigmoids): explain the --target "
                         "labels, or every label over 0.5, with sigmoid probabilities")


# --------------------------------------------------------------------------- samples


def _cmd_samples(args: argparse.Namespace) -> int:
    from ..model.zoo import SAMPLE_DESCRIPTIONS

    width = max(map(len, SAMPLE_DESCRIPTIONS))
    for name, text in SAMPLE_DESCRIPTIONS.items():
        print(f"sample:{name:<{width}}  {text}")
    return 0


# --------------------------------------------------------------------------- explain


def _slug(text: str, limit: int = 40) -> str:
    """A file-name-safe lower-case version of a label."""
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")[:limit] or "class"


def _load_images(specs: Sequence[str]) -> list[tuple[str, Any]]:
    """Resolve every IMG argument up front, so a typo fails before any model is loaded."""
    from ..inputs.images import to_image_tensor
    from ..model.zoo import sample_image

    loaded: list[tuple[str, Any]] = []
    seen: dict[str, int] = {}
    for spec in specs:
        if spec.startswith("sample:"):
            pixels = to_image_tensor(sample_image(spec), name=spec)
            stem = spec.split(":", 1)[1]
        else:
            pixels = to_image_tensor(spec, name="IMG")
            stem = Path(spec).stem or "image"
        stem = _slug(stem, 60)
        seen[stem] = seen.get(stem, 0) + 1
        if seen[stem] > 1:
            stem = f"{stem}-{seen[stem]}"
        loaded.append((stem, pixels))
    return loaded


def _label(labels: Sequence[str] | None, index: int) -> str:
    return labels[index] if labels is not None and 0 <= index < len(labels) else f"class {index}"


class _Plan(NamedTuple):
    """One image to explain: stem, pixels, class list (or None), classes or target, maps."""

    stem: str
    pixels: Any
    probs: Any
    targets: Any
    rows: int


def _cli_target(given: list[Any], args: argparse.Namespace) -> Any:
    """The target of the --target values (tagged tuples: box, region, detected) and flags."""
    from ..engine.targets import Box, Detected, MultiLabel, Region, TopK, as_target

    kinds = [g for g in given if isinstance(g, tuple) and g[0] in ("box", "region", "detected")]
    if kinds and len(given) > 1:
        raise ValueError("--target box:/region:/detected: give that --target alone")
    if kinds:
        tag, *rest = kinds[0]
        return (Box(rest[0], rest[1]) if tag == "box" else
                Region(rest[0], box=rest[1]) if tag == "region" else Detected(rank=rest[0]))
    if args.multilabel:
        return MultiLabel(list(given) if given else None)
    return (as_target(given[0] if len(given) == 1 else given, name="--target") if given
            else TopK(args.top or 1))


def _plan(cam: Any, stem: str, pixels: Any, target: Any,
          labels: Sequence[str] | None) -> _Plan:
    from ..engine.targets import Context, MultiLabel
    from ..engine.targets.classes import SOFTMAX_KINDS

    if isinstance(target, SOFTMAX_KINDS):
        probs = cam.predict(pixels)[0]
        classes = target.resolve(probs[None], Context(labels=labels, name="--target")).classes
        return _Plan(stem, pixels, probs, classes.tolist(), len(classes))
    try:
        probs = cam.predict(pixels, target)[0]  # sigmoids, a segmentation's class shares
    except ValueError:
        probs = None  # a detector: no class list
    rows = 1
    if isinstance(target, MultiLabel):
        rows = len(target.classes) if target.classes else max(1, int((
            probs > target.threshold).sum()))
    return _Plan(stem, pixels, probs, target, rows)


def _plans(cam: Any, images: list[tuple[str, Any]], args: argparse.Namespace,
           model_name: str, labels: Sequence[str] | None = None) -> list[_Plan]:
    """Predict every image first, so that a bad --target fails before any bar or file appears."""
    plans = []
    for stem, pixels in images:
        try:
            plans.append(_plan(cam, stem, pixels, _cli_target(args.target or [], args), labels))
        except (TypeError, ValueError) as exc:
            raise _UsageError(str(exc).replace("`--target`", "--target").replace(
                "the model has", f"{model_name} has")) from None
    return plans


def _top_classes(stem: str, pixels: Any, probs: Any, rows: int,
                 labels: Sequence[str] | None) -> str:
    shown = probs.topk(min(max(5, rows), probs.shape[0]))
    lines = [f"{stem} ({pixels.shape[2]}×{pixels.shape[1]}): top classes"]
    lines += [f"  {int(i):>4d}  {p:6.1%}  {_label(labels, int(i))}"
              for p, i in zip(shown.values.tolist(), shown.indices.tolist())]
    return "\n".join(lines)


def _write_maps(result: Any, stem: str, args: argparse.Namespace,
                labels: Sequence[str] | None) -> Iterator[str]:
    """Write the .npy and .png of each row of ``result``; yield one report line per row."""
    import numpy as np

    from ..display import render

    out: Path = args.out
    suffix = "_destructive" if args.convention == "destructive" else ""
    image = result.pixels[0].permute(1, 2, 0).numpy()
    for row, cls in enumerate(result.target):
        name = f"{stem}_{cls}_{_slug(_label(labels, cls))}{suffix}"
        saliency = result.saliency_at(result.size, rows=[row])[0].numpy()
        np.save(out / f"{name}.npy", saliency)
        png = render.to_png_bytes(render.overlay(image, saliency, alpha=args.alpha,
                                                 cmap=args.cmap))
        (out / f"{name}.png").write_bytes(png)
        first, last = float(result.initial_score[row]), float(result.final_score[row])
        yield (f"  -> {cls} {_label(labels, cls)}: {result.score} {first:.4g} -> {last:.4g} in "
               f"{result.iterations_per_row[row]} steps; wrote {out / name}.png and .npy")


def _check_device(spec: str | None) -> Any:
    """The torch device named by --device, checked to exist here (before any model loads)."""
    if spec is None:
        return None
    from ..support.checks import check_device

    try:
        return check_device(spec)
    except ValueError as exc:
        raise _UsageError(str(exc).replace("`device`", "--device")) from None


def _cmd_explain(args: argparse.Namespace) -> int:
    import numpy as np
    from tqdm import tqdm

    from ..display import render
    from ..engine.config import OptiCAMSettings
    from ..engine.explainer import OptiCAM
    from ..model.zoo import load_model

    render.colorize(np.zeros((2, 2), np.float32), args.cmap)  # fail early on a bad colormap
    settings = OptiCAMSettings(max_iter=args.max_iter, lr=args.lr, optimizer=args.optimizer,
                               objective=args.objective, convention=args.convention,
                               score=args.score)  # fail early too
    device = _check_device(args.device)
    images = _load_images(args.images)
    bundle = load_model(args.model)
    if device is not None:
        bundle.model.to(device)
    cam = OptiCAM(bundle, device=device, settings=settings)
    plans = _plans(cam, images, args, bundle.name, bundle.labels)
    args.out.mkdir(parents=True, exist_ok=True)
    steps = cam.settings.max_iter
    bar = tqdm(total=sum(p.rows for p in plans) * steps, unit="it", desc="Opti-CAM",
               disable=args.no_progress, dynamic_ncols=True, leave=False)
    try:
        for stem, pixels, probs, targets, count in plans:
            if probs is not None:
                tqdm.write(_top_classes(stem, pixels, probs, count, bundle.labels))
            base = bar.n

            def on_step(step: int, progress: Any, base: int = base, stem: str = stem,
                        rows: int = count) -> None:
                bar.set_postfix_str(f"{stem} step {step}/{progress.max_iter}", refresh=False)
                bar.update(base + step * rows - bar.n)

            result = cam.explain(pixels, targets, callback=on_step)
            bar.update(base + steps * count - bar.n)  # early stop: fill the gap
            for line in _write_maps(result, stem, args, bundle.labels):
                tqdm.write(line)
    finally:
        bar.close()
    return 0


# --------------------------------------------------------------------------- entry point


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``opticam`` command.

    Args:
        argv: Arguments without the program name (default: ``sys.argv[1:]``).

    Returns:
        The exit status: 0 on success, 2 on bad input (one line on stderr, no traceback),
        130 when interrupted.

    Example:
        >>> main(["samples"])  # doctest: +ELLIPSIS
        sample:chelsea ...
        0
    """
    from ..model.zoo import CheckpointMismatchError, ModelDownloadError

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, usage errors
        return int(exc.code or 0) if not isinstance(exc.code, str) else EXIT_USAGE
    if getattr(args, "func", None) is None:
        print(f"{PROG}: error: give a command, `explain` or `samples` (see `{PROG} --help`)",
              file=sys.stderr)
        return EXIT_USAGE
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (_UsageError, TypeError, ValueError, OSError, ModelDownloadError,
            CheckpointMismatchError) as exc:
        if os.environ.get("OPTICAM_DEBUG"):
            raise
        print(f"{PROG}: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
