"""Unit tests of the widget's pure parts: state (keys, images, cache, session, class names),
the refresh throttle, the HTML messages and file names. No widget is built here."""

from __future__ import annotations

import dataclasses
import threading

import numpy as np
import pytest
import torch
from torch import nn

from opticam_widgets import OptiCAM
from opticam_widgets.inputs.preprocess import Preprocess
from opticam_widgets.widget.export import png_name, render_view
from opticam_widgets.widget.messages import (
    caption_html,
    error_html,
    label_html,
    metrics_html,
    note_html,
    result_html,
    settings_html,
    status_html,
)
from opticam_widgets.widget.runner import Throttle
from opticam_widgets.widget.state import (
    ClassNames,
    Entry,
    ImageState,
    ResultCache,
    RunKey,
    Session,
    check_labels,
    check_top_k,
    named_pixels,
)


def tiny_cnn(classes: int = 4) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(8, classes)).eval()


@pytest.fixture(scope="module")
def results():
    """A finished, an early-stopped and a cancelled result of a real (tiny) model."""
    cam = OptiCAM(tiny_cnn(), preprocess=Preprocess(size=None), max_iter=4)
    x = torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(0))
    stop = threading.Event()
    stop.set()
    return {
        "done": cam.explain(x, 1, tol=None),
        "early": cam.explain(x, 1, max_iter=200, tol=1e9, patience=2),
        "cancelled": cam.explain(x, 1, cancel=stop),
    }


def state(probs=(0.1, 0.6, 0.3), top_k=2, name="img") -> ImageState:
    return ImageState.from_probs(name, torch.rand(3, 5, 7), np.asarray(probs), top_k)


# ---------------------------------------------------------------------------- keys, images


def test_run_key_is_frozen_hashable_and_rounds_lr():
    a = RunKey(0, 3, 10, 0.2, "constructive", True)
    b = RunKey(0, 3, 10, 0.2 + 1e-12, "constructive", True)  # slider float noise
    assert a == b and hash(a) == hash(b) and a.lr == 0.2
    assert RunKey(0, 3, 10, 0.2, "destructive") != a
    assert RunKey(0, 3, 10, 0.2, "constructive", early_stop=False) != a
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.target = 4


def test_image_state_top_classes_and_search_picks():
    s = state(probs=(0.2, 0.5, 0.2, 0.1), top_k=3)
    assert s.top == [1, 0, 2] and s.target == 1  # ties keep index order
    assert s.rgb.dtype == np.uint8 and s.rgb.shape == (5, 7, 3)
    np.testing.assert_array_equal(s.rgb, np.rint(s.pixels.permute(1, 2, 0).numpy() * 255))
    assert not s.offer(0)  # already listed
    assert s.offer(3) and not s.offer(3)
    assert s.classes == [1, 0, 2, 3]


def test_named_pixels_names_and_errors(tmp_path):
    from PIL import Image

    path = tmp_path / "pic.png"
    Image.fromarray(np.zeros((4, 6, 3), np.uint8)).save(path)
    named = named_pixels([str(path), torch.rand(3, 2, 2)])
    assert [n for n, _ in named] == ["pic.png", "image 2"]
    assert named[0][1].shape == (3, 4, 6)
    assert [n for n, _ in named_pixels(torch.rand(2, 3, 4, 4))] == ["image 1", "image 2"]
    assert [n for n, _ in named_pixels(torch.rand(3, 4, 4))] == ["image 1"]
    with pytest.raises(ValueError, match="empty"):
        named_pixels([])
    with pytest.raises((TypeError, ValueError), match=r"images\[1\]"):
        named_pixels([torch.rand(3, 4, 4), "no/such/file.png"])


def test_argument_checks():
    assert check_top_k(3) == 3
    for bad in (0, -1, True, 2.0, "3"):
        with pytest.raises(ValueError, match="top_k"):
            check_top_k(bad)
    assert check_labels(None) is None and check_labels(None, ("a",)) == ["a"]
    assert check_labels(("x", "y"), ("a",)) == ["x", "y"]
    for bad in ("abc", 3, {"a": 1}.keys()):
        with pytest.raises(TypeError, match="labels"):
            check_labels(bad)


# ---------------------------------------------------------------------------- cache, session


def test_result_cache_keeps_finished_results_only(results):
    cache = ResultCache()
    key = RunKey(0, 1, 4, 0.2, "constructive")
    assert not cache.add(Entry(key, results["cancelled"]))  # partial: refused
    assert key not in cache and cache.get(key) is None and len(cache) == 0
    entry = Entry(key, results["done"], {"AD": 1.0})
    assert cache.add(entry) and cache.get(key) is entry and key in cache
    assert cache.get(RunKey(0, 1, 4, 0.2, "destructive")) is None
    cache.clear()
    assert len(cache) == 0


def test_session_selection_keys_and_screen(results):
    session = Session()
    assert session.target is None and not session.shows(RunKey(0, 0, 1, 0.2, "constructive"))
    with pytest.raises(RuntimeError, match="no image"):
        session.key(iterations=5, lr=0.2, convention="constructive")
    first, second = state(name="a"), state(probs=(0.7, 0.2, 0.1), name="b")
    session.load([first, second])
    key = session.key(iterations=5, lr=0.2, convention="constructive", early_stop=False)
    assert key == RunKey(0, 1, 5, 0.2, "constructive", False) and session.shows(key)
    session.cache.add(Entry(key, results["done"]))
    session.shown = Entry(key, results["done"])
    session.index = 1
    assert session.image is second and session.target == 0 and not session.shows(key)
    second.target = 2
    assert session.key(iterations=5, lr=0.2, convention="constructive").target == 2
    session.load([state()])  # new images: cache and screen cleared
    assert session.index == 0 and len(session.cache) == 0 and session.shown is None


def test_class_names():
    names = ClassNames.for_model(["ant", "bee <b>"], 2)
    assert names.names == ["ant", "bee <b>"] and len(names) == 2 and names[1] == "bee <b>"
    assert names.search_options == ["ant (0)", "bee <b> (1)"]
    assert names.find("bee <b> (1)") == 1 and names.find("bee") is None
    assert names.option(0, 0.1234) == "ant — 12.3%"
    with pytest.raises(ValueError, match="2 names but the model has 3 outputs"):
        ClassNames.for_model(["ant", "bee"], 3)
    assert ClassNames.for_model(None, 3).names == ["class 0", "class 1", "class 2"]
    from opticam_widgets.model.zoo import imagenet_labels

    assert ClassNames.for_model(None, 1000).names == list(imagenet_labels())


# ---------------------------------------------------------------------------- throttle


def test_throttle_interval_and_cost():
    t = Throttle(0.25)
    assert t.due(0.0)
    t.mark(0.0)
    assert not t.due(0.2) and t.due(0.25)
    slow = Throttle(0.25, cost_factor=2.0)
    slow.mark(1.0, 1.5)  # a refresh that took 0.5 s: the next waits 1 s after it ended
    assert not slow.due(2.4) and slow.due(2.5)
    slow.mark(3.0, 3.01)  # cheap again: back to the interval
    assert not slow.due(3.2) and slow.due(3.26)


# ---------------------------------------------------------------------------- messages, files


def test_messages_escape_every_dynamic_part(results):
    evil = "<script>x</script>"
    assert "<script>" not in label_html([evil], 0) and "&lt;script&gt;" in label_html([evil], 0)
    assert label_html(None, 0) == "" and label_html(["a"], None) == ""
    assert "<script>" not in error_html(ValueError(evil))
    for tone in ("muted", "warning", "error"):
        assert "&lt;script&gt;" in note_html(evil, tone) and "<script>" not in note_html(evil, tone)
    assert "<script>" not in caption_html(evil, evil, {"error": evil})
    assert "<script>" not in status_html("ok", [evil])
    assert "<script>" not in settings_html(5, 0.2, evil)
    assert "<script>" not in metrics_html({"AD": 1.0, "AG": 1.0}, [(evil, {"error": evil})])
    table = metrics_html({"AD": 12.5, "AG": 3.0})
    assert metrics_html(None) == "" and "<td>12.5%</td>" in table and "<td>3.0%</td>" in table
    assert "title='Average Drop:" in table and "title='Average Gain:" in table


def test_result_messages_say_how_the_run_ended(results):
    assert "4 iterations" in result_html("L", results["done"], 4)
    early = results["early"]
    assert early.iterations < 200
    assert f"converged after {early.iterations} iterations" in result_html("L", early, 200)
    cancelled = results["cancelled"]
    assert "stopped at iteration 0/4" in result_html("L", cancelled, 4)


def test_png_name_and_render_view():
    assert png_name(0, "tabby, tabby cat") == "opticam_1_tabby__tabby_cat.png"
    assert png_name(2, None) == png_name(2, "<>") == "opticam_3_map.png"
    rgb = np.full((4, 6, 3), 200, np.uint8)
    sal = np.zeros((2, 3))
    assert render_view(rgb, None) is rgb and render_view(rgb, sal, view="original") is rgb
    assert render_view(rgb, sal, view="masked").max() == 0
    assert render_view(rgb, sal, view="masked", inverse=True).min() == 200
    assert render_view(rgb, sal, view="saliency").shape == (4, 6, 3)
    assert render_view(rgb, sal, opacity=0.0).tolist() == rgb.tolist()
