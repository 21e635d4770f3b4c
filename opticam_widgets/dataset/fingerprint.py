"""What makes two runs the same run: the settings and the fingerprint a store is checked against.

A resume appends rows to a store, so it must prove that the new rows come from the same
computation as the stored ones. :func:`run_settings` records the model's *weights* (a BLAKE2b
digest of its ``state_dict``: names, dtypes, shapes and bytes, buffers included), the layer, the
preprocessing, every :class:`~opticam_widgets.engine.explainer.OptiCAM` setting that changes a map
(taken from the explainer, so the defaults are written whether or not they were passed: the
Python API and the CLI write the same keys), the batching mode and the package's version.
Settings that only change float rounding (device, ``max_batch``, the engine, and the batch
size with ``batching="independent"``) are not compared; the batch size and engine of each run
are recorded in the metadata of the shards it wrote.

:func:`check_same_run` refuses a mismatch with each differing key's old and new value and the
way to start over, worded for the caller (``resume=False`` or ``--no-resume``).

Example:
    >>> import torch
    >>> weights_digest(torch.nn.Linear(2, 2)) == weights_digest(torch.nn.Linear(2, 2))
    False
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from ..engine.targets import Target
from ..model.bundle import ModelBundle
from .compute import BatchExplainer

__all__ = ["RENAMED_KEYS", "SettingsMismatchError", "check_same_run", "run_settings",
           "upgrade_settings", "weights_digest"]

#: OptiCAM attributes that change a map (beyond float rounding), recorded in the settings.
_CAM_SETTINGS = ("max_iter", "lr", "tol", "patience", "nb_premises_at_startup", "convention",
                 "score", "precision", "lr_schedule", "seed", "optimizer", "objective",
                 "fold_batchnorm")


def weights_digest(model: nn.Module) -> str:
    """A digest of a model's weights and buffers (``state_dict``), ``"blake2b:<hex>"``.

    Two models with the same class but other weights get other digests; the same weights on
    another device or in another process get the same one.
    """
    h = hashlib.blake2b(digest_size=16)
    with torch.no_grad():
        for name, value in model.state_dict().items():
            if not isinstance(value, torch.Tensor):
                h.update(f"{name}={value!r};".encode())
                continue
            t = value.detach()
            h.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
            flat = t.reshape(-1)
            if flat.numel():
                flat = flat.to("cpu").contiguous()
                h.update(flat.view(torch.uint8).numpy().tobytes())
    return "blake2b:" + h.hexdigest()


def describe(value: Any) -> Any:
    """A JSON-friendly description: targets by spec, callables by name, tuples as lists."""
    if isinstance(value, Target):
        return describe(value.spec())
    if callable(value):
        return getattr(value, "__qualname__", type(value).__qualname__)
    if isinstance(value, tuple):
        return [describe(v) for v in value]
    return value


def run_settings(model: Any, explainer: BatchExplainer, target: Any, metrics: Any,
                 batch_size: int) -> dict[str, Any]:
    """The settings a store is checked against on resume (JSON-friendly).

    The batch size is one of them only with ``batching="shared"`` (where it changes maps).
    """
    from .. import __version__

    net = explainer.net
    pre = explainer.pre
    cam = explainer.cam
    name = model.name if isinstance(model, ModelBundle) else type(net).__name__
    return {
        "model": name, "weights": weights_digest(net), "layer": explainer.layer,
        "preprocess": {"size": describe(pre.size), "mean": describe(pre.mean),
                       "std": describe(pre.std), "transform": describe(pre.transform)},
        "target": describe(target), "metrics": metrics, "labels": explainer.labels is not None,
        "input_size": describe(pre.size),
        **{k: describe(getattr(cam.settings, k)) for k in _CAM_SETTINGS},
        # the stopping the run used, not "auto": the same keys and values as before "auto"
        **dict(zip(("tol", "patience"), cam.settings.stopping)),
        "reshape": describe(cam.reshape),
        "batching": explainer.batching,
        "yardsticks": explainer.yardsticks.record(),
        **({"batch_size": batch_size} if explainer.batching == "shared" else {}),
        "version": __version__,
    }


class SettingsMismatchError(ValueError):
    """A store made by another run: each differing key with its old and new value.

    Attributes:
        out: The results folder.
        differences: ``[(key, stored value, new value), ...]``.
    """

    def __init__(self, out: str, differences: list[tuple[str, Any, Any]]) -> None:
        self.out, self.differences = out, differences
        super().__init__(self.message("resume=False"))

    def message(self, start_over: str) -> str:
        """The refusal, naming ``start_over`` (``resume=False``, ``--no-resume``) as the fix."""
        what = "; ".join(f"{k}: stored {_short(old)}, now {_short(new)}"
                         for k, old, new in self.differences)
        return (f"`out` {self.out!r} holds results of another run ({what}); pass "
                f"{start_over} to delete them and start over there, or give another `out`")


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


#: Keys an older store wrote under another name (the one-name-per-concept re-layout, #26).
RENAMED_KEYS = {"schedule": "optimizer"}


def upgrade_settings(stored: Mapping[str, Any]) -> dict[str, Any]:
    """A stored settings dict in today's keys: renamed keys moved, settings added since filled.

    A store written before a setting existed ran with that setting's default (the setting did
    not exist to change it), so the default is what its rows were computed with.

    Example:
        >>> upgrade_settings({"schedule": "paper"})["optimizer"]
        'paper'
    """
    from ..engine.config import OptiCAMSettings

    out = {RENAMED_KEYS.get(k, k): v for k, v in stored.items()}
    defaults = {f.name: f.default for f in dataclasses.fields(OptiCAMSettings)
                if f.default is not dataclasses.MISSING}
    for key in _CAM_SETTINGS:
        if key not in out and key in defaults:
            out[key] = describe(defaults[key])
    out.setdefault("yardsticks", None)  # written before yardsticks: none measured
    return out


def check_same_run(out: str, stored: Mapping[str, Any], settings: Mapping[str, Any]) -> None:
    """Raise :class:`SettingsMismatchError` unless ``stored`` and ``settings`` agree.

    ``stored`` may come from an older store: see :func:`upgrade_settings`.
    """
    stored = upgrade_settings(stored)
    keys = sorted(set(stored) | set(settings))
    diff = [(k, stored.get(k), settings.get(k)) for k in keys if stored.get(k) != settings.get(k)]
    if diff:
        raise SettingsMismatchError(out, diff)
