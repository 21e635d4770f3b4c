"""The ``opticam explain-dataset`` and ``opticam report`` subcommands.

Usage::

    opticam explain-dataset SOURCE --out DIR [--batch-size N] [--max-iter N] [--lr X]
                            [--optimizer paper|fast]
                            [--target top1|true|N|topK|annotations[:box|:mask]]
                            [--engine local|ray]
                            [--resume | --no-resume] [--metrics paper|full|none]
                            [--shard-size N] [--flush-every SECONDS]
                            [--batching independent|shared] [--model SPEC] [--no-progress]
                            [--yardsticks auto|cheap|all|none|NAME,...] [--methods NAME,...]
    opticam report DIR [--out REPORT_DIR]

``add_subcommands(subparsers)`` registers both on the ``opticam`` parser.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..cli.args import add_run_options, positive_float, positive_int, target_arg

__all__ = ["add_subcommands", "parse_methods", "parse_target", "parse_yardsticks"]


#: ``--target``'s argparse type: :func:`~opticam_widgets.cli.args.target_arg`, the one CLI
#: shorthand of the target grammar (``top1``, ``true``, ``topK``, an index, a label name).
parse_target = target_arg


def _names(value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip())


def parse_yardsticks(value: str) -> Any:
    """``--yardsticks``: ``auto``, ``cheap``, ``all``, ``none`` or names separated by commas.

    Example:
        >>> parse_yardsticks("mean,deletion"), parse_yardsticks("none")
        (('mean', 'deletion'), ())
    """
    from .yardsticks import check_yardsticks

    wanted: Any = () if value == "none" else value if value in ("auto", "cheap", "all") \
        else _names(value)
    try:
        return check_yardsticks(wanted)
    except (TypeError, ValueError) as exc:
        raise argparse.ArgumentTypeError(str(exc).replace("`yardsticks`", "--yardsticks")) \
            from None


def parse_methods(value: str) -> tuple[str, ...]:
    """``--methods``: baseline method names separated by commas (e.g. ``gradcam,finercam``).

    Example:
        >>> parse_methods("gradcam, channel-mean")
        ('gradcam', 'channel-mean')
    """
    from .yardsticks import check_methods

    try:
        return check_methods(_names(value))
    except (TypeError, ValueError) as exc:
        raise argparse.ArgumentTypeError(str(exc).replace("`methods`", "--methods")) from None


def _target(value: Any) -> Any:
    """``--target``'s value; ``annotations[:USE]`` as an ``Annotations`` target."""
    if isinstance(value, tuple) and value and value[0] == "annotations":
        from ..engine.targets import Annotations

        return Annotations(value[1])
    return value


def _cmd_explain_dataset(args: argparse.Namespace) -> int:
    import signal
    import sys

    from .api import explain_dataset
    from .fingerprint import SettingsMismatchError
    from .signals import RunStopped

    metrics = {"paper": True, "full": "full", "none": False}[args.metrics]
    try:
        results = explain_dataset(
            args.model, args.source, args.out, target=_target(args.target),
            batch_size=args.batch_size,
            max_iter=args.max_iter, lr=args.lr, engine=args.engine, metrics=metrics,
            resume=args.resume, progress=not args.no_progress, optimizer=args.optimizer,
            objective=args.objective,
            shard_size=args.shard_size, flush_every=args.flush_every, batching=args.batching,
            yardsticks=args.yardsticks, methods=args.methods)
    except SettingsMismatchError as exc:
        print(f"opticam: error: {exc.message('--no-resume')}", file=sys.stderr)
        return 2
    except RunStopped as exc:
        print(f"opticam: stopped by {signal.Signals(exc.signum).name}: {exc.stored} images "
              f"are stored in {exc.out}; run the same command again to finish (--resume is "
              "the default)", file=sys.stderr)
        return 128 + exc.signum
    except KeyboardInterrupt:
        print(f"opticam: interrupted: the complete rows are stored in {args.out}; run the same "
              "command again to finish (--resume is the default)", file=sys.stderr)
        return 130
    print(results)
    if metrics:
        summary = results.summary(by=None)
        print(" ".join(f"{k} {summary.loc['all', k]:.1f}" for k in ("AD", "AI", "AG")))
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from .report import write_report

    print(f"wrote {write_report(args.dir, args.out)}")
    return 0


def add_subcommands(subparsers: Any) -> None:
    """Register ``explain-dataset`` and ``report`` on an ``add_subparsers()`` object."""
    ex = subparsers.add_parser(
        "explain-dataset", help="explain every image of a folder into a Parquet store",
        description="Explain a folder of images (recursive; class subfolders give true labels) "
                    "with Opti-CAM; one Parquet row per (image, class) under --out.")
    ex.add_argument("source", metavar="SOURCE",
                    help="folder of images, one image file, or a manifest (.csv, .json, "
                         ".jsonl, .parquet: path, label, boxes, masks columns)")
    ex.add_argument("--out", type=Path, required=True, metavar="DIR", help="results folder")
    ex.add_argument("--batch-size", type=positive_int, default=16, metavar="N",
                    help="images per optimization (default 16)")
    add_run_options(ex)
    ex.add_argument("--target", type=parse_target, default=None, metavar="T",
                    help="top1 (default), true (the folder's label), topK, a class index, or "
                         "annotations[:box|:mask] (one row per object the SOURCE annotates: a "
                         "manifest's boxes/masks columns)")
    ex.add_argument("--engine", choices=("local", "ray"), default="local",
                    help="local (default) or ray (Ray Data; RAY_ADDRESS for a cluster)")
    ex.add_argument("--resume", action=argparse.BooleanOptionalAction, default=True,
                    help="skip images already in --out (default) / start over")
    ex.add_argument("--metrics", choices=("paper", "full", "none"), default="paper",
                    help="paper: AD/AI/AG terms (default); full: + insertion/deletion AUC")
    ex.add_argument("--shard-size", type=positive_int, default=1024, metavar="N",
                    help="rows are written once N are done (default 1024); small shards are "
                         "merged at the end")
    ex.add_argument("--flush-every", type=positive_float, default=60.0, metavar="SECONDS",
                    help="write finished rows at least this often (default 60): a killed run "
                         "loses at most about a minute")
    ex.add_argument("--batching", choices=("independent", "shared"), default="independent",
                    help="independent: each map as `explain` gives it alone, whatever the "
                         "batch (default); shared: one optimization per batch (faster on GPU, "
                         "maps depend on the batch by float rounding)")
    ex.add_argument("--model", default="default", metavar="SPEC",
                    help="'default' (embedded EfficientNet-Lite0), 'torchvision:NAME' or "
                         "'torchvision:NAME:WEIGHTS' (none, a weights name or a local file; "
                         "detectors and segmenters too)")
    _add_yardstick_flags(ex)
    ex.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    ex.set_defaults(func=_cmd_explain_dataset)

    rep = subparsers.add_parser(
        "report", help="write a Markdown report and PNG figures of a results folder",
        description="Write report.md (the paper's AD/AI/AG table, worst and best cases, "
                    "skipped images) and overview.png for an explain-dataset folder.")
    rep.add_argument("dir", type=Path, metavar="DIR", help="results folder")
    rep.add_argument("--out", type=Path, default=None, metavar="REPORT_DIR",
                     help="report folder (default DIR/_report)")
    rep.set_defaults(func=_cmd_report)


def _add_yardstick_flags(parser: argparse.ArgumentParser) -> None:
    """``--yardsticks`` and ``--methods`` (the dataset engine's ``yardsticks=``, ``methods=``)."""
    parser.add_argument("--yardsticks", type=parse_yardsticks, default="auto", metavar="Y",
                        help="what each map is measured on besides --metrics: auto (default: "
                             "cheap on a new store, what the store has on a resume), cheap "
                             "(AD/AI/AG under black, mean and blur fills, deletion), all (+ "
                             "insertion, ROAD), none, or names separated by commas (black,mean,"
                             "blur,image-mean,deletion,insertion,road)")
    parser.add_argument("--methods", type=parse_methods, default=(), metavar="M,...",
                        help="baseline methods measured on the same yardsticks, separated by "
                             "commas (e.g. gradcam,finercam)")
