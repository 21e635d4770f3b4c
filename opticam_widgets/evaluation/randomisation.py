"""The model-parameter randomisation test (Adebayo et al. 2018, "Sanity checks for saliency maps").

A map that explains the *model* must change when the model's learnt weights are destroyed.
Cascading randomisation: on a deep copy of the model (the user's model is never touched), the
blocks are randomised one after the other **from the top** (the classifier first, then the
block below it, …, down to the stem), and after each step the map is recomputed with the same
method and the same class, and compared with the original map
(:func:`~opticam_widgets.evaluation.map_similarity.map_similarity`: Spearman rank correlation
and SSIM). A method that passes shows similarities that fall towards 0 as more of the model is
randomised; one whose maps stay alike is an edge detector, not an explanation.

*Blocks* (:func:`randomisation_blocks`): the model's top-level children that hold parameters,
a ``Sequential`` / ``ModuleList`` child expanded into its own children (for an EfficientNet:
``classifier``, ``bn2``, ``conv_head``, ``blocks.6`` … ``blocks.0``, ``bn1``, ``conv_stem``).
*Randomising* a block replaces every parameter tensor in it by Gaussian draws with that
tensor's own mean and standard deviation (the scale of the trained weights is kept, what they
learnt is not); buffers (BatchNorm's running statistics) are kept. The draws come from a
generator seeded by ``seed``, so the caller's random state is untouched.

Example:
    >>> import torch
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3), nn.ReLU(),
    ...                     nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
    >>> randomisation_blocks(net)
    ['6', '2', '0']
    >>> res = randomisation_test(net, torch.rand(3, 16, 16), "channel-mean", target=0,
    ...                          preprocess={"size": None}, target_layer="2")
    >>> res.layers, res.maps.shape
    (('6', '2', '0'), (4, 16, 16))
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ..engine.classes import model_labels
from ..engine.targets import TargetLike
from ..model.bundle import ModelBundle, unpack_model
from ..model.features import LayerSpec
from ..support.checks import check_int
from .forward import eval_mode, original_probabilities
from .map_similarity import map_similarity
from .method_maps import MethodLike, layer_name, method_map, single_image

__all__ = ["RandomisationResult", "cascading_randomisation", "plot_randomisation",
           "randomisation_blocks", "randomisation_test"]


@dataclass(frozen=True)
class RandomisationResult:
    """The maps of the cascading randomisation and their similarity with the original.

    Attributes:
        layers: The block randomised at each step (cumulatively: step ``i`` has blocks
            ``layers[:i + 1]`` randomised).
        maps: (L + 1, H, W) float32: the original map, then the map after each step.
        spearman: (L,) rank correlation of each step's map with the original.
        ssim: (L,) SSIM of each step's map with the original.
        method: The method's name (``"callable"`` for a function).
        target: The class explained.
    """

    layers: tuple[str, ...]
    maps: np.ndarray
    spearman: np.ndarray
    ssim: np.ndarray
    method: str
    target: int


def _has_params(module: nn.Module) -> bool:
    return any(True for _ in module.parameters())


def randomisation_blocks(model: nn.Module | ModelBundle) -> list[str]:
    """The blocks the cascade randomises, top (output) first.

    Example:
        >>> from torch import nn
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4, 2))
        >>> randomisation_blocks(net)
        ['3', '0']
    """
    net, _ = unpack_model(model, None)
    names: list[str] = []
    for name, child in net.named_children():
        if not _has_params(child):
            continue
        if isinstance(child, (nn.Sequential, nn.ModuleList)) and len(child) > 1:
            names += [f"{name}.{n}" for n, c in child.named_children() if _has_params(c)]
        else:
            names.append(name)
    if not names and _has_params(net):
        names = [""]  # a single module with its own parameters
    return names[::-1]


def _randomise(block: nn.Module, generator: torch.Generator) -> None:
    """Replace each parameter by Gaussian draws with its own mean and standard deviation."""
    with torch.no_grad():
        for p in block.parameters():
            mean = float(p.float().mean())
            std = float(p.float().std()) if p.numel() > 1 else 0.0
            if not std > 0:
                std = 0.1 * max(abs(mean), 1.0)  # a constant tensor still gets randomised
            draw = torch.randn(p.shape, generator=generator, dtype=torch.float64)
            p.copy_((mean + std * draw).to(p.device, p.dtype))


def cascading_randomisation(model: nn.Module | ModelBundle, layers: Sequence[str] | None = None,
                            seed: int = 0) -> Iterator[tuple[str, nn.Module]]:
    """Yield ``(block, copy)`` after randomising each block in turn, on one deep copy.

    The copy is the same object at every step, randomised cumulatively; the user's model is
    never touched.

    Args:
        model: The model (or a ModelBundle: its network).
        layers: The blocks' dotted names in cascade order (default:
            :func:`randomisation_blocks`).
        seed: Seed of the random weights.

    Yields:
        The block's name and the copy with it (and every block before it) randomised.

    Raises:
        TypeError: ``layers`` is not a sequence of names.
        ValueError: a name that is not a module of the model.

    Example:
        >>> from torch import nn
        >>> net = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 2))
        >>> [name for name, _ in cascading_randomisation(net, seed=1)]
        ['2', '0']
    """
    net, _ = unpack_model(model, None)
    names = _check_layers(net, layers)
    seed = check_int("seed", seed, 0)
    clone = copy.deepcopy(net)
    generator = torch.Generator().manual_seed(seed)
    for name in names:
        _randomise(clone.get_submodule(name), generator)
        yield name, clone


def _check_layers(net: nn.Module, layers: Sequence[str] | None) -> list[str]:
    if layers is None:
        return randomisation_blocks(net)
    if isinstance(layers, str) or not all(isinstance(n, str) for n in layers):
        raise TypeError("`layers` must be a list of module names (e.g. "
                        f"{randomisation_blocks(net)[:2]}), top first")
    known = dict(net.named_modules())
    for name in layers:
        if name not in known:
            raise ValueError(f"`layers`: {name!r} is not a module of the model; use names of "
                             f"model.named_modules(), e.g. {randomisation_blocks(net)[:3]}")
    return list(layers)


def _one_class(model: Any, image: Any, target: Any, preprocess: Any
               ) -> tuple[nn.Module, Any, torch.Tensor, int]:
    """The bare model, its preprocessing, the pixel batch (1, 3, H, W) and the target's class."""
    net, pre, x = single_image(model, image, preprocess)
    with eval_mode(net):
        _, rows = original_probabilities(net, pre, x, torch.zeros(1, dtype=torch.long), target,
                                         1, model_labels(model))
    return net, pre, x, int(rows.classes[0])


def randomisation_test(
    model: nn.Module | ModelBundle,
    image: Any,
    method: MethodLike = "gradcam",
    target: TargetLike = None,
    preprocess: Any = None,
    *,
    layers: Sequence[str] | None = None,
    target_layer: LayerSpec = None,
    seed: int = 0,
    **settings: Any,
) -> RandomisationResult:
    """The cascading model-parameter randomisation test of one image's map.

    Args:
        model: A classifier returning logits, or a ModelBundle (left untouched: the test runs
            on a deep copy).
        image: One image (pixel values in [0, 1]).
        method: ``"opticam"``, a name of :data:`~opticam_widgets.evaluation.baselines.BASELINES`
            or ``fn(model, image, target) -> map`` (see :func:`.method_maps.method_map`).
        target: What to explain (:mod:`~opticam_widgets.engine.targets`), one class; resolved
            on the original model and kept for every step.
        preprocess: The model's preprocessing (None: the bundle's, or ImageNet 224×224).
        layers: The blocks to randomise, top first (default: :func:`randomisation_blocks`).
        target_layer: The method's layer (None: the engine's choice).
        seed: Seed of the random weights.
        **settings: Opti-CAM's settings, for ``method="opticam"``.

    Returns:
        A :class:`RandomisationResult`.

    Raises:
        TypeError: an argument of the wrong kind.
        ValueError: bad values (several images, unknown layer names, a bad target).

    Example:
        >>> import torch
        >>> from torch import nn
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        ...                     nn.Flatten(), nn.Linear(4, 3))
        >>> res = randomisation_test(net, torch.rand(3, 16, 16), "channel-mean", 1,
        ...                          {"size": None}, target_layer="1")
        >>> res.spearman.shape
        (2,)
    """
    net, pre, x, cls = _one_class(model, image, target, preprocess)
    layer = layer_name(net, target_layer)
    original = method_map(method, net, x, cls, target_layer=layer, preprocess=pre, **settings)[0]
    maps, names, rho, ssim = [original.numpy()], [], [], []
    for name, clone in cascading_randomisation(net, layers, seed):
        m = method_map(method, clone, x, cls, target_layer=layer, preprocess=pre, **settings)[0]
        sim = map_similarity(original, m)
        maps.append(m.numpy())
        names.append(name)
        rho.append(sim["spearman"])
        ssim.append(sim["ssim"])
    return RandomisationResult(
        layers=tuple(names), maps=np.stack(maps).astype(np.float32),
        spearman=np.asarray(rho, dtype=np.float64), ssim=np.asarray(ssim, dtype=np.float64),
        method=method if isinstance(method, str) else "callable", target=cls)


def plot_randomisation(result: RandomisationResult, *, max_maps: int = 8) -> Any:
    """A matplotlib figure: the maps side by side, then the similarities per step.

    Args:
        result: A :func:`randomisation_test` result.
        max_maps: Most maps drawn (the original and evenly spaced steps, the last included).

    Returns:
        A :class:`matplotlib.figure.Figure` (not shown; no pyplot state is touched).

    Example:
        >>> import numpy as np
        >>> res = RandomisationResult(("fc",), np.random.rand(2, 8, 8).astype("float32"),
        ...                           np.array([0.1]), np.array([0.2]), "gradcam", 0)
        >>> len(plot_randomisation(res).axes)
        3
    """
    from matplotlib.figure import Figure

    if not isinstance(result, RandomisationResult):
        raise TypeError(f"`result` must be a RandomisationResult; got {type(result).__name__}")
    max_maps = check_int("max_maps", max_maps, 2)
    steps = len(result.layers)
    picks = sorted(set(np.linspace(0, steps, min(max_maps, steps + 1)).round().astype(int)))
    fig = Figure(figsize=(max(1.6 * len(picks), 4.0), 3.8), layout="constrained")
    grid = fig.add_gridspec(2, len(picks))
    for col, i in enumerate(picks):
        ax = fig.add_subplot(grid[0, col])
        ax.imshow(result.maps[i], cmap="jet", vmin=0.0, vmax=1.0)
        ax.set_title("original" if i == 0 else f"→ {result.layers[i - 1]}", fontsize=7)
        ax.set_axis_off()
    ax = fig.add_subplot(grid[1, :])
    x = np.arange(1, steps + 1)
    ax.plot(x, result.spearman, "o-", label="Spearman rank correlation")
    ax.plot(x, result.ssim, "s-", label="SSIM")
    ax.set_xticks(x, list(result.layers), rotation=45, fontsize=7)
    ax.set_ylim(-1.05, 1.05)
    ax.axhline(0.0, color="grey", lw=0.5)
    ax.set_xlabel("randomised down to (cumulative, top first)")
    ax.set_title(f"{result.method}: similarity with the original map", fontsize=8)
    ax.legend(fontsize=7)
    return fig
