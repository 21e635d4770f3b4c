"""Dual encoders bound with image_tower (#28): Hugging Face CLIP and SigLIP, open_clip.

Random weights from tiny configurations (no download): the target layer found is the vision
tower's last token grid, checked against the model's own hidden states; the processor's size,
mean and std are used; the text side encodes as the model does; a prompt is explained; the
model is left as found, after success and after an error; bad inputs are refused.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from opticam_widgets import OptiCAM
from opticam_widgets.engine.targets import Similarity, TextPrompt
from opticam_widgets.model.dualencoder import ImageTower, image_tower
from opticam_widgets.model.features import capture, model_guard

transformers = pytest.importorskip("transformers")

TEXT = {"vocab_size": 16, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
        "num_attention_heads": 2, "max_position_embeddings": 8}
VISION = {"image_size": 32, "patch_size": 8, "hidden_size": 32, "intermediate_size": 64,
          "num_hidden_layers": 2, "num_attention_heads": 2}
WORDS = ["[PAD]", "[UNK]", "a", "red", "blue", "square", "circle"]


def tiny_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers

    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    return transformers.PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="[PAD]",
                                                unk_token="[UNK]", model_max_length=8)


def hf_pair(kind: str):
    """A random-weight CLIPModel or SiglipModel and its processor (built offline)."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        if kind == "clip":
            config = transformers.CLIPConfig(text_config=TEXT, vision_config=VISION,
                                             projection_dim=16)
            model = transformers.CLIPModel(config).eval()
            images = transformers.CLIPImageProcessor(
                size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
            return model, transformers.CLIPProcessor(image_processor=images,
                                                     tokenizer=tiny_tokenizer())
        config = transformers.SiglipConfig(text_config=TEXT, vision_config=VISION)
        model = transformers.SiglipModel(config).eval()
        images = transformers.SiglipImageProcessor(size={"height": 32, "width": 32})
        return model, transformers.SiglipProcessor(image_processor=images,
                                                   tokenizer=tiny_tokenizer())


def open_clip_pair():
    open_clip = pytest.importorskip("open_clip")
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = open_clip.CLIP(
            embed_dim=16, vision_cfg={"image_size": 32, "patch_size": 8, "width": 32,
                                      "layers": 2, "head_width": 16, "mlp_ratio": 2.0},
            text_cfg={"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2,
                      "layers": 1}).eval()
    return model, open_clip


@pytest.fixture(scope="module")
def models() -> dict:
    return {"clip": hf_pair("clip"), "siglip": hf_pair("siglip")}


def state(model: nn.Module) -> tuple:
    return ([m.training for m in model.modules()], [p.requires_grad for p in model.parameters()],
            [p.grad for p in model.parameters()],
            {k: v.clone() for k, v in model.state_dict().items()},
            sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules()))


def session_state() -> tuple:
    return (torch.get_rng_state(), torch.is_grad_enabled(), torch.get_default_dtype(),
            torch.get_num_threads())


def same(a: tuple, b: tuple) -> bool:
    return a[:3] == b[:3] and a[4] == b[4] and all(torch.equal(a[3][k], b[3][k]) for k in a[3])


@pytest.mark.parametrize(("kind", "prefix"), [("clip", 1), ("siglip", 0)])
def test_hugging_face_layer_is_the_vision_towers_last_token_grid(models, kind, prefix):
    model, processor = models[kind]
    bundle = image_tower(model, processor)
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        hidden = model.vision_model(pixel_values=x, output_hidden_states=True).hidden_states[-1]
        embeds = model(pixel_values=x, input_ids=torch.ones(1, 3, dtype=torch.long)).image_embeds
    with model_guard(bundle.model):
        name, feats, out = capture(bundle.model, x)
    assert name == "model.vision_model.encoder.layers.1"
    grid = hidden[:, prefix:].reshape(2, 4, 4, 32).permute(0, 3, 1, 2)  # class token dropped
    torch.testing.assert_close(feats, torch.relu(grid))
    torch.testing.assert_close(nn.functional.normalize(out, dim=1), embeds)
    mean = processor.image_processor.image_mean
    assert bundle.preprocess.size == (32, 32) and bundle.preprocess.mean == tuple(mean)


@pytest.mark.parametrize("kind", ["clip", "siglip"])
def test_hugging_face_text_side_and_a_prompt_explained(models, kind):
    model, processor = models[kind]
    bundle = image_tower(model, processor)
    padding = {"padding": "max_length", "max_length": 8} if kind == "siglip" else {
        "padding": True}
    tokens = processor.tokenizer(["a red square"], return_tensors="pt", **padding)
    with torch.no_grad():
        expected = model(pixel_values=torch.rand(1, 3, 32, 32), **tokens).text_embeds
    got = bundle.model.encode_text(["a red square"])
    torch.testing.assert_close(nn.functional.normalize(got, dim=1), expected)
    image, wrong = torch.rand(3, 32, 32), Similarity(torch.ones(5))
    before, session = state(model), session_state()
    result = OptiCAM(bundle, max_iter=3).explain(image, TextPrompt("a red square", bundle))
    assert result.saliency.shape == (1, 32, 32) and result.layer.endswith("layers.1")
    assert float(result.final_score[0]) >= float(result.initial_score[0])
    with pytest.raises(ValueError, match="reference has 5 dimensions"):
        OptiCAM(bundle, max_iter=3).explain(image, wrong)
    assert same(before, state(model))
    assert torch.equal(session[0], session_state()[0]) and session[1:] == session_state()[1:]


def test_open_clip_layer_tokenizer_offline_and_prompt(no_network):
    model, open_clip = open_clip_pair()
    tokenizer = open_clip.get_tokenizer("ViT-B-32", context_length=16)  # bundled vocabulary
    assert no_network == []
    spec = {"size": (32, 32), "mean": (0.48, 0.46, 0.41), "std": (0.27, 0.26, 0.28)}
    model.train()
    model.transformer.eval()  # mixed modes, a frozen weight and a gradient: all kept as they are
    model.visual.conv1.weight.requires_grad_(False)
    model.text_projection.grad = torch.ones_like(model.text_projection)
    before = state(model)
    bundle = image_tower(model, spec, tokenizer=tokenizer)
    assert same(before, state(model))
    x = torch.rand(2, 3, 32, 32)
    seen = []
    handle = model.visual.transformer.register_forward_hook(lambda m, i, o: seen.append(o))
    with torch.no_grad():
        model.eval()
        embeds = model.encode_image(x)
        model.train()
        model.transformer.eval()
    handle.remove()
    with model_guard(bundle.model):
        name, feats, out = capture(bundle.model, x)
    assert name == "model.visual.transformer"
    grid = seen[0][:, 1:].reshape(2, 4, 4, 32).permute(0, 3, 1, 2)
    torch.testing.assert_close(feats, torch.relu(grid))
    torch.testing.assert_close(out, embeds)
    with torch.no_grad():
        model.eval()
        expected = model.encode_text(tokenizer(["a blue circle"]))
        model.train()
        model.transformer.eval()
    torch.testing.assert_close(bundle.model.encode_text(["a blue circle"]), expected)
    result = OptiCAM(bundle, max_iter=3).explain(x, TextPrompt(["a red square", "a blue circle"],
                                                               bundle))
    assert result.saliency.shape == (2, 32, 32)
    assert same(before, state(model))


def test_open_clip_preprocessing_read_from_the_model():
    model, _ = open_clip_pair()
    with pytest.raises(ValueError, match="`processor` is needed"):
        image_tower(model)
    model.visual.preprocess_cfg = {"size": 32, "mean": (0.1, 0.2, 0.3), "std": (0.4, 0.5, 0.6),
                                   "interpolation": "bicubic"}
    spec = image_tower(model).preprocess
    assert spec.size == (32, 32) and spec.mean == (0.1, 0.2, 0.3) and spec.std == (0.4, 0.5, 0.6)


def test_refusals(models):
    model, processor = models["clip"]
    with pytest.raises(TypeError, match="must be a dual encoder"):
        image_tower(nn.Conv2d(3, 3, 1))
    with pytest.raises(ValueError, match=r"`processor` is needed.*CLIPProcessor"):
        image_tower(model)
    with pytest.raises(TypeError, match="`tokenizer` must be callable"):
        image_tower(model, processor.image_processor, tokenizer=3)
    no_text = image_tower(model, processor.image_processor)
    assert isinstance(no_text.model, ImageTower) and no_text.model.tokenizer is None
    with pytest.raises(ValueError, match="no tokenizer: pass `tokenizer=`"):
        OptiCAM(no_text, max_iter=1).explain(torch.rand(3, 32, 32), TextPrompt("a", no_text))
    with pytest.raises(TypeError, match="raw CLIPModel.*image_tower"):
        TextPrompt("a red square", encoder=model)
