"""Issue 13, explainer side: odd dtypes, degenerate scores, the model left alone, batches."""

from __future__ import annotations

import pytest
import torch
from tinynets import small_cnn
from torch import nn

from opticam_widgets import OptiCAM
from opticam_widgets.cli.main import main
from opticam_widgets.evaluation.baselines import baseline_map
from opticam_widgets.evaluation.metrics import deletion, faithfulness
from opticam_widgets.inputs.preprocess import Preprocess

pytestmark = pytest.mark.numeric  # rerun by `make portable` (AVX2, 1 and 2 threads)

PRE = Preprocess(size=None)
X = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(1))


def cam(net: nn.Module, **kw) -> OptiCAM:
    return OptiCAM(net, preprocess=PRE, **{"max_iter": 5, **kw})


class Counting(nn.Module):
    """Records the batch size of every forward pass."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net, self.rows = net, []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.rows.append(int(x.shape[0]))
        return self.net(x)


# ------------------------------------------------------------------ dtypes
@pytest.mark.parametrize(("dtype", "atol"), [(torch.float64, 1e-5), (torch.float16, 0.05),
                                             (torch.bfloat16, 0.05)])
@pytest.mark.parametrize("fold", [True, False])
def test_models_in_other_dtypes_follow_their_dtype(dtype, atol, fold):
    reference = cam(small_cnn()).explain(X, target=1)
    net = small_cnn().to(dtype)
    r = cam(net, fold_batchnorm=fold).explain(X, target=1)
    assert r.saliency.dtype == torch.float32 and r.final_score.dtype == torch.float32
    torch.testing.assert_close(r.saliency, reference.saliency, atol=atol, rtol=0)
    assert next(net.parameters()).dtype == dtype  # the model is not converted
    assert cam(net).predict(X).dtype == torch.float32
    assert 0 <= faithfulness(net, X, r.saliency, preprocess=PRE)["AD"] <= 100
    assert deletion(net, X, r.saliency, preprocess=PRE, steps=3).scores.shape == (1, 4)
    assert baseline_map("gradcam", net, X, preprocess=PRE).shape == (1, 32, 32)


def test_float64_default_dtype_works_and_is_left_alone():
    net = small_cnn()  # float32 weights, made before the switch
    reference = cam(net).explain(X, target=2)
    torch.set_default_dtype(torch.float64)
    try:
        r = cam(net).explain(X, target=2)
        assert cam(net).layer_name == "4"
        assert torch.get_default_dtype() == torch.float64
        p = faithfulness(net, X, r.saliency, preprocess=PRE)["p"]
        r64 = cam(small_cnn().double()).explain(X, target=2)
    finally:
        torch.set_default_dtype(torch.float32)
    torch.testing.assert_close(r.saliency, reference.saliency, atol=1e-5, rtol=0)
    assert p.shape == (1,) and r64.saliency.dtype == torch.float32


# ------------------------------------------------------------------ degenerate scores
class NaNOnMasked(nn.Module):
    """Finite logits on the image itself, NaN on anything darker (every masked image)."""

    def __init__(self) -> None:
        super().__init__()
        self.net, self.limit = small_cnn(), None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x)
        total = x.sum()
        if self.limit is None:
            self.limit = float(total) * 0.9999
        return out + torch.where(total < self.limit, float("nan"), 0.0)


class IntLogits(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = small_cnn()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.net(x) * 100).long()


def nan_model() -> nn.Module:
    net = small_cnn()
    with torch.no_grad():
        net[-1].bias.fill_(float("nan"))
    return net


@pytest.mark.parametrize(
    ("make", "kwargs", "exc", "match"),
    [
        (nan_model, {}, ValueError, "`model` returned NaN or infinite logits"),
        (NaNOnMasked, {}, ValueError, "`model` returned NaN .* masked image at step 0"),
        (IntLogits, {}, ValueError, "`model` must return floating-point logits"),
        (small_cnn, {"score": lambda lg, t: lg[:, 0] * float("nan")}, ValueError,
         "`score` returned NaN"),
        (small_cnn, {"score": lambda lg, t: lg[:, :2]}, ValueError,
         r"`score` must return one float per row, shape \(1,\); got shape \(1, 2\)"),
        (small_cnn, {"score": lambda lg, t: lg.sum()}, ValueError, "one float per row"),
        (small_cnn, {"score": lambda lg, t: lg.argmax(1).float()}, ValueError,
         "`score` returned a value with no gradient"),
        (small_cnn, {"score": lambda lg, t: lg[:, 0].detach()}, ValueError, "no gradient"),
        (small_cnn, {"score": lambda lg, t: lg[:, 0].tolist()}, TypeError,
         "`score` must return a tensor"),
        (lambda: small_cnn(classes=1), {"score": "probability"}, ValueError,
         "`score`='probability' is always 1"),
    ],
)
def test_degenerate_scores_are_refused(make, kwargs, exc, match):
    net = make()
    with pytest.raises(exc, match=match):
        cam(net, **kwargs).explain(X, target=0)
    assert all(p.requires_grad for p in net.parameters()) and not hooks(net)


def test_one_class_model_with_logit_score_works():
    r = cam(small_cnn(classes=1)).explain(X, target=0)
    assert r.final_score > r.initial_score


def hooks(net: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in net.modules())


# ------------------------------------------------------------------ the model left alone
@pytest.mark.parametrize("fold", [True, False])
def test_model_untouched_while_the_loop_runs_on_the_folded_copy(fold):
    net = small_cnn().train()
    net[1].eval()  # a mixed state, as users leave it
    seen = []

    def callback(step, progress):
        seen.append((net.training, net[1].training,
                     all(p.requires_grad for p in net.parameters())))

    cam(net, fold_batchnorm=fold).explain(X, target=0, callback=callback)
    if fold:  # the model keeps its own state during the run: a notebook can train it meanwhile
        assert set(seen) == {(True, False, True)}
    else:  # the loop runs on the model itself: frozen for the run (documented), then restored
        assert set(seen) == {(False, False, False)}
    assert net.training and not net[1].training
    assert all(p.requires_grad and p.grad is None for p in net.parameters())


# ------------------------------------------------------------------ bounded batches
def test_many_classes_run_in_bounded_batches_with_the_same_maps():
    net = Counting(small_cnn(classes=12))
    classes = list(range(12))
    chunked = cam(net, max_batch=5, fold_batchnorm=False).explain(X, target=classes)
    assert max(net.rows[1:]) == 5 and net.rows[1:8] == [5, 5, 2] * 2 + [5]
    whole = cam(net, max_batch=100, fold_batchnorm=False).explain(X, target=classes)
    torch.testing.assert_close(chunked.saliency, whole.saliency, atol=1e-5, rtol=0)
    torch.testing.assert_close(chunked.scores, whole.scores, atol=1e-5, rtol=0)
    for c in (0, 7, 11):
        one = cam(net, fold_batchnorm=False).explain(X, target=c)
        torch.testing.assert_close(one.saliency[0], chunked.saliency[c], atol=1e-5, rtol=0)


def test_premises_and_early_stop_with_batches():
    net = small_cnn(classes=6)
    kw = {"max_iter": 40, "tol": 1e-3, "patience": 3, "nb_premises_at_startup": 3}
    chunked = cam(net, max_batch=4, **kw).explain(X, target=list(range(6)))
    whole = cam(net, max_batch=64, **kw).explain(X, target=list(range(6)))
    assert chunked.iterations_per_row == whole.iterations_per_row
    torch.testing.assert_close(chunked.saliency, whole.saliency, atol=1e-5, rtol=0)


def test_forty_classes_on_the_default_model_in_batches():
    from opticam_widgets.model.zoo import load_default_model, sample_image

    bundle, image = load_default_model(), sample_image("chelsea")
    top = OptiCAM(bundle).predict(image)[0].topk(40).indices.tolist()
    small = OptiCAM(bundle, max_iter=2, max_batch=8).explain(image, target=top)
    large = OptiCAM(bundle, max_iter=2, max_batch=40).explain(image, target=top)
    assert small.saliency.shape == (40, 300, 451)
    # Batches of 8 and of 40 run other convolution kernels: iteration 0 (the same map) scores
    # alike to rounding (measured 3.7e-6 relative, AVX2); Adam's first, sign-like steps
    # amplify that to 0.5% of the score and 0.023 of the map after two steps (AVX2). A row
    # given another row's class or map would miss by whole logits and r well below 0.9.
    torch.testing.assert_close(small.scores[:, 0], large.scores[:, 0], atol=0, rtol=1e-4)
    torch.testing.assert_close(small.final_score, large.final_score, atol=0, rtol=2e-2)
    for a, b in zip(small.low_res, large.low_res):
        assert float(torch.corrcoef(torch.stack([a.flatten(), b.flatten()]))[0, 1]) > 0.98


# ------------------------------------------------------------------ CLI devices
@pytest.mark.parametrize(("device", "pattern"), [
    ("nope", "--device 'nope' is not a torch device"),
    ("cuda:7", "--device 'cuda:7'"),
    ("mps", "--device 'mps'"),
])
def test_cli_unknown_or_missing_device_exits_2(capsys, tmp_path, device, pattern, monkeypatch):
    if device == "mps" and torch.backends.mps.is_available():
        pytest.skip("this machine has MPS")
    code = main(["explain", "sample:chelsea", "--device", device, "--out", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("opticam: error: ")
    assert pattern in err[0] and not any(tmp_path.iterdir())


def test_cli_cuda_without_gpu_exits_2(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    code = main(["explain", "sample:chelsea", "--device", "cuda", "--out", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err == ["opticam: error: --device 'cuda': no CUDA GPU is available here; "
                                 "use 'cpu'"]
