"""Embedding targets (#28): Similarity to a reference vector or image, TextPrompt of a dual encoder.

The rows' arithmetic and refusals on plain tensors, then maps of a tiny dual encoder trained here
on shape captions (``tiny_dualencoder``): each caption's map lands on its shape, and so does the
map of the similarity to a picture of that shape alone.
"""

from __future__ import annotations

import json

import pytest
import tiny_dualencoder as td
import torch
from torch import nn

from opticam_widgets import OptiCAM
from opticam_widgets.engine.targets import Context, EmbeddingRows, Similarity, TextPrompt
from opticam_widgets.model.bundle import ModelBundle
from opticam_widgets.model.dualencoder import image_tower

WORDS = {"red": [1.0, 0.0, 0.0], "blue": [0.0, 1.0, 0.0], "both": [1.0, 1.0, 0.0]}


def encode(texts: list[str]) -> torch.Tensor:
    return torch.tensor([WORDS[t] for t in texts])


# ----------------------------------------------------------------- rows on plain tensors
def test_score_is_the_cosine_and_probability_its_map_to_0_1():
    out = torch.randn(3, 5, requires_grad=True)
    ref = torch.randn(5)
    rows = Similarity(ref).resolve(out.detach())
    score = rows.score(out[rows.index])
    expected = nn.functional.cosine_similarity(out, ref[None], dim=1)
    torch.testing.assert_close(score, expected)
    torch.testing.assert_close(rows.probability(out.detach()), (expected.detach() + 1) / 2)
    score.sum().backward()  # differentiable
    assert out.grad is not None and bool(out.grad.abs().sum() > 0)
    far = Similarity(-ref).probability(ref[None] * 3)  # opposite: 0; same direction: 1
    near = Similarity(ref).probability(ref[None] * 3)
    assert float(far) == pytest.approx(0.0, abs=1e-6) and float(near) == pytest.approx(1.0)


def test_count_rule_and_subset():
    out = torch.randn(2, 3)
    one = Similarity([1.0, 0.0, 0.0]).resolve(out)
    assert one.index.tolist() == [0, 1] and one.reference.shape == (2, 3)
    each = Similarity(torch.eye(3)[:2]).resolve(out)
    assert each.index.tolist() == [0, 1]
    torch.testing.assert_close(each.reference, torch.eye(3)[:2])
    several = Similarity(torch.eye(3)).resolve(out[:1])
    assert several.index.tolist() == [0, 0, 0] and several.ranks == (0, 1, 2)
    part = several.subset(torch.tensor([2, 0, 2]))
    assert isinstance(part, EmbeddingRows) and part.index.tolist() == [0, 0, 0]
    torch.testing.assert_close(part.reference, torch.eye(3)[[2, 0, 2]])
    with pytest.raises(ValueError, match="3 references for 2 images"):
        Similarity(torch.eye(3)).resolve(out)
    with pytest.raises(ValueError, match="3 references for 1 image"):
        Similarity(torch.eye(3)).resolve(out[:1], Context(several_for_one=False))


def test_text_prompt_rows_and_specs():
    prompt = TextPrompt(["red", "blue"], encode)
    out = torch.tensor([[2.0, 0.0, 0.0]])
    rows = prompt.resolve(out)
    assert rows.index.tolist() == [0, 0]
    torch.testing.assert_close(prompt(out), torch.tensor([1.0, 0.0]))
    torch.testing.assert_close(prompt.probabilities(out), torch.tensor([[1.0, 0.5]]))
    for target in (prompt, Similarity(torch.ones(3)), rows):
        json.dumps(target.spec())
    assert prompt.spec() == {"text": ["red", "blue"]}
    assert Similarity(torch.ones(2, 3)).spec() == {"similarity": [2, 3]}
    assert repr(TextPrompt("red", encode)) == "TextPrompt(text='red')"


def test_bad_references_and_prompts_are_refused():
    with pytest.raises(TypeError, match="float embeddings"):
        Similarity(torch.tensor([1, 2, 3]))
    with pytest.raises(ValueError, match="non-zero"):
        Similarity(torch.zeros(3))
    with pytest.raises(ValueError, match="non-zero"):
        Similarity([float("nan"), 1.0])
    with pytest.raises(ValueError, match="reference has 4 dimensions but the model's embedding "
                                         "has 3"):
        Similarity(torch.ones(4)).resolve(torch.ones(2, 3))
    with pytest.raises(ValueError, match="class logits.*image_tower"):
        Similarity(torch.ones(3)).resolve(torch.ones(2, 3), Context(labels=["a", "b", "c"]))
    with pytest.raises(ValueError, match=r"compares embeddings \(B, D\).*\(2, 3, 4, 4\)"):
        Similarity(torch.ones(3)).resolve(torch.ones(2, 3, 4, 4))
    with pytest.raises(ValueError, match="needs the model that embeds it: pass `encoder=`"):
        Similarity(torch.rand(3, 8, 8)).resolve(torch.ones(1, 3))
    with pytest.raises(TypeError, match="bare nn.Module"):
        Similarity(torch.rand(3, 8, 8), encoder=nn.Conv2d(3, 3, 1))
    with pytest.raises(ValueError, match="TextPrompt needs a text encoder: pass `encoder=`"):
        TextPrompt("a red square").resolve(torch.ones(1, 3))
    with pytest.raises(TypeError, match="`text` must be a prompt"):
        TextPrompt(3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="non-empty"):
        TextPrompt(" ")
    with pytest.raises(TypeError, match="one float embedding per prompt"):
        TextPrompt(["red", "blue"], lambda texts: torch.ones(1, 3)).resolve(torch.ones(1, 3))
    with pytest.raises(TypeError, match="raw Linear|must be an image_tower"):
        TextPrompt("red", encoder=nn.Linear(2, 2))


def test_an_image_reference_is_embedded_once_without_gradient():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten()).train()
    calls = []
    bundle = ModelBundle(net, preprocess={"size": (8, 8), "mean": (0.0,) * 3, "std": (1.0,) * 3})
    target = Similarity(torch.rand(3, 8, 8), encoder=bundle)
    net.register_forward_hook(lambda *a: calls.append(torch.is_grad_enabled()))
    first = target.resolve(torch.ones(2, 4))
    target.resolve(torch.ones(2, 4))
    assert calls == [False] and first.reference.shape == (2, 4)  # once, no gradient
    assert net.training and all(p.requires_grad for p in net.parameters())


# ----------------------------------------------------------------- a trained tiny dual encoder
@pytest.fixture(scope="module")
def trained() -> tuple[ModelBundle, td.TinyDualEncoder]:
    model = td.train()
    x, y, _ = td.scenes(200, seed=11)
    assert td.accuracy(model, x, y) >= 0.95
    spec = {"size": (td.SIZE, td.SIZE), "mean": (0.0,) * 3, "std": (1.0,) * 3}
    return image_tower(model, spec, tokenizer=td.tokenize), model


@pytest.fixture(scope="module")
def both_shapes() -> tuple[torch.Tensor, list]:
    """12 test scenes with both shapes (and a green cross half the time)."""
    x, _, boxes = td.scenes(12, seed=2, present=(1.0, 1.0))
    return x, boxes


def _state(model: nn.Module) -> tuple:
    return ([m.training for m in model.modules()], [p.requires_grad for p in model.parameters()],
            [p.grad for p in model.parameters()],
            {k: v.clone() for k, v in model.state_dict().items()})


def _same(before: tuple, after: tuple) -> bool:
    return before[:3] == after[:3] and all(torch.equal(before[3][k], after[3][k])
                                          for k in before[3])


@pytest.fixture(scope="module")
def caption_maps(trained, both_shapes) -> tuple[list, tuple, tuple]:
    """Each caption's result on the two-shape scenes, and the model's state before and after."""
    bundle, model = trained
    before = _state(model)
    cam = OptiCAM(bundle, max_iter=25, lr=0.1)
    results = [cam.explain(both_shapes[0], TextPrompt(c, bundle)) for c in td.CAPTIONS]
    return results, before, _state(model)


@pytest.mark.numeric
@pytest.mark.parametrize("caption", [0, 1])
def test_each_caption_map_lands_on_its_shape(caption_maps, both_shapes, caption):
    """Pointing game of each caption's map on its own shape and on the other one (a map that
    ignored the prompt would score the same on both)."""
    results, before, after = caption_maps
    result, boxes = results[caption], both_shapes[1]
    assert result.layer == "model.visual.7"  # the last convolution's ReLU, before pooling
    own = td.pointing_game(result.saliency, [b[caption] for b in boxes])
    other = td.pointing_game(result.saliency, [b[1 - caption] for b in boxes])
    assert own >= 0.8 and other <= 0.2, (own, other)
    assert bool((result.final_score >= result.initial_score - 1e-6).all())
    assert _same(before, after)


@pytest.mark.numeric
@pytest.mark.parametrize("caption", [0, 1])
def test_metrics_read_the_prompts_probability(trained, caption_maps, both_shapes, caption):
    """Average Drop on ``(cos + 1) / 2`` of the prompt: its own maps keep it, the other
    caption's maps (on the other shape) lose it."""
    from opticam_widgets.evaluation.metrics import faithfulness

    bundle, _ = trained
    results, _, _ = caption_maps
    target = TextPrompt(td.CAPTIONS[caption], bundle)
    own = faithfulness(bundle, both_shapes[0], results[caption].saliency, target=target)
    other = faithfulness(bundle, both_shapes[0], results[1 - caption].saliency, target=target)
    assert own["AD"] <= 2.0 and other["AD"] >= own["AD"] + 5.0, (own["AD"], other["AD"])


@pytest.mark.numeric
@pytest.mark.parametrize("shape", [0, 1])
def test_similarity_to_a_picture_of_one_shape_lands_on_it(trained, both_shapes, shape):
    """The reference: another picture holding only that shape, embedded by the same model."""
    bundle, _ = trained
    x, boxes = both_shapes
    reference, _, _ = td.scenes(1, seed=3 + shape, present=(shape == 0, shape == 1),
                                distractor=0.0)
    result = OptiCAM(bundle, max_iter=25, lr=0.1).explain(
        x, Similarity(reference[0], encoder=bundle))
    own = td.pointing_game(result.saliency, [b[shape] for b in boxes])
    other = td.pointing_game(result.saliency, [b[1 - shape] for b in boxes])
    assert own >= 0.8 and other <= 0.2, (own, other)


def test_model_untouched_after_an_error(trained):
    bundle, model = trained
    before = _state(model)
    with pytest.raises(ValueError, match="reference has 3 dimensions"):
        OptiCAM(bundle, max_iter=2).explain(torch.rand(3, td.SIZE, td.SIZE),
                                            Similarity(torch.ones(3)))
    assert _same(before, _state(model))
    assert sum(len(m._forward_hooks) for m in bundle.model.modules()) == 0
