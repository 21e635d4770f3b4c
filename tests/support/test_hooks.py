"""The library's own hooks act in their own thread only and are never taken for the user's."""

from __future__ import annotations

import threading

import torch
from torch import nn

from opticam_widgets.engine.explainer import OptiCAM
from opticam_widgets.support.hooks import drop_own_hooks, own_hook, user_hooked
from opticam_widgets.widget.compare import Cancelled, interruptible


def _in_thread(fn):
    out = []
    t = threading.Thread(target=lambda: out.append(fn()))
    t.start()
    t.join()
    return out[0]


def test_own_hook_acts_in_its_thread_only():
    net, seen = nn.Linear(2, 2), []
    handle = net.register_forward_hook(own_hook(lambda m, i, o: seen.append(o.shape[0])))
    try:
        net(torch.zeros(1, 2))
        _in_thread(lambda: net(torch.zeros(3, 2)))
        assert seen == [1]
        assert not user_hooked(net)
        user = net.register_forward_pre_hook(lambda m, i: None)
        assert user_hooked(net)
        user.remove()
    finally:
        handle.remove()


def test_a_copy_drops_own_hooks_but_keeps_the_users():
    net = nn.Sequential(nn.Linear(2, 2))
    net[0].register_forward_hook(own_hook(lambda m, i, o: None))
    net[0].register_forward_hook(lambda m, i, o: None)
    drop_own_hooks(net)
    assert len(net[0]._forward_hooks) == 1 and user_hooked(net)


def _net() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                        nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4))
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    return net.eval()


def test_a_cancelled_background_job_leaves_the_users_explain_alone():
    """A widget job interrupted in its thread neither cancels nor changes a call in another."""
    net, image = _net(), torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(1))
    cam = OptiCAM(net, target_layer="3", max_iter=5, preprocess={"size": None})
    alone = cam.explain(image, 0).saliency
    entered, release, cancel = threading.Event(), threading.Event(), threading.Event()
    cancel.set()
    caught = []

    def job():
        with interruptible(net, cancel):
            entered.set()
            release.wait(60)
            try:
                net(torch.zeros(1, 3, 32, 32))
            except Cancelled:
                caught.append(True)

    t = threading.Thread(target=job)
    t.start()
    try:
        assert entered.wait(60)
        assert not user_hooked(net)
        beside = cam.explain(image, 0).saliency  # neither Cancelled nor the unfolded path
    finally:
        release.set()
        t.join()
    assert caught == [True]  # the job itself is still interrupted
    assert torch.equal(alone, beside)
    assert not net._forward_pre_hooks
