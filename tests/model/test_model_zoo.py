"""The model zoo: 67 architectures (timm, torchvision, Hugging Face), shallow and random-weight at
their real widths, each checked twice.

1. Against the ground truth: the map Opti-CAM captures (layer picked automatically) equals the
   library's own last feature map (timm ``forward_intermediates``, Hugging Face
   ``output_hidden_states`` / ``reshaped_hidden_states``, a hook on the torchvision layer).
2. Without a reference: in the captured layer's map as Opti-CAM reads it, the gradient of
   each corner cell with respect to the input lies mostly in that corner's own half, row-wise
   and column-wise (a transposed, flipped or scrambled grid fails this).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import pytest
import torch
import zoo_models as zm
from torch import Tensor, nn

from opticam_widgets.model.features import capture, layer_layout, model_guard
from opticam_widgets.model.layouts import layout_hints, to_spatial
from opticam_widgets.model.picker import batch_tensor
from opticam_widgets.model.tokenorder import token_order

CORNERS = ((0, 0), (0, -1), (-1, 0), (-1, -1))


def image(size: tuple[int, int], batch: int = 1) -> Tensor:
    gen = torch.Generator().manual_seed(0)
    return torch.randn(batch, 3, *size, generator=gen)


def spatial_with_grad(model: nn.Module, x: Tensor, layer: str) -> Tensor:
    """The layer's map as Opti-CAM reads it, (B, C, h, w), differentiable w.r.t. ``x``."""
    module = dict(model.named_modules())[layer]
    seen: list[Tensor] = []
    handle = module.register_forward_hook(
        lambda _m, _i, out: seen.append(batch_tensor(out, x.shape[0])))
    try:
        model(x)
    finally:
        handle.remove()
    out, reshape = seen[-1], None
    reorder = token_order(model, layer)
    if reorder is not None and out.ndim == 3:
        out, reshape = reorder(out), "nhwc"
    return to_spatial(out, reshape, (x.shape[-2], x.shape[-1]), layout_hints(model), layer,
                      module)


def corner_gradients(model: nn.Module, layer: str, size: tuple[int, int]) -> list[Tensor]:
    """Per corner cell of the layer's map: |d cell / d input| summed over colours, (H, W)."""
    x = image(size, len(CORNERS)).requires_grad_(True)
    with model_guard(model):
        maps = spatial_with_grad(model, x, layer)
        # a random mix of the channels (their plain sum is constant after a LayerNorm)
        mix = torch.randn(maps.shape[1], generator=torch.Generator().manual_seed(2))
        total = sum(maps[i, :, r, c] @ mix for i, (r, c) in enumerate(CORNERS))
        (grad,) = torch.autograd.grad(total, x)
    return list(grad.abs().sum(1))


def halves(grad: Tensor) -> tuple[float, float, float, float]:
    """Gradient mass in the top, bottom, left and right halves of the input."""
    h, w = grad.shape
    return (float(grad[: h // 2].sum()), float(grad[h - h // 2:].sum()),
            float(grad[:, : w // 2].sum()), float(grad[:, w - w // 2:].sum()))


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny tensors: a second thread only spins (CPU time, no speed); restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module", params=zm.ARCHS, ids=[a.name for a in zm.ARCHS])
def built(request: pytest.FixtureRequest) -> tuple[zm.Arch, nn.Module, str, Tensor]:
    arch = request.param
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = arch.build()
    x = image(arch.size)
    with model_guard(model):
        layer, feats, _ = capture(model, x)
    return arch, model, layer, feats


def test_zoo_is_large_enough():
    kinds = {a.name.split(":")[0] for a in zm.ARCHS}
    assert len({a.name + str(a.kwargs) for a in zm.ARCHS}) >= 60 and kinds == {
        "timm", "torchvision", "hf"}


def matches(feats: Tensor, expected: Tensor) -> bool:
    expected = torch.relu(expected.float())
    scale = float(expected.abs().max())
    return feats.shape == expected.shape and scale > 0 and torch.allclose(
        feats, expected, atol=1e-4 * scale, rtol=1e-4)


def test_captured_map_is_the_librarys_own(built):
    arch, model, layer, feats = built
    with model_guard(model):
        expected = zm.references(arch, model, image(arch.size))
    assert any(matches(feats, e) for e in expected), (
        layer, tuple(feats.shape), [tuple(e.shape) for e in expected])


def test_corner_cells_see_their_own_place(built):
    arch, model, layer, _ = built
    if not arch.local:
        pytest.skip(f"{arch.name}: cells mixed globally at random weights (see zoo_models)")
    if layer_layout(model, image(arch.size), layer) == "nchw":
        pytest.skip("a (B, C, h, w) map is read as it is (the reference test checks it); a "
                    "random CNN's receptive field is too broad for this check at a 2×2 grid")
    for (r, c), grad in zip(CORNERS, corner_gradients(model, layer, arch.size)):
        top, bottom, left, right = halves(grad)
        # a corner cell depends most on its own quarter: its rows' half and its columns' half
        # (a transposed, flipped or scrambled grid puts some corner's mass on the other side)
        assert (top > bottom) == (r == 0) and (left > right) == (c == 0), (
            layer, (r, c), (top, bottom, left, right))
