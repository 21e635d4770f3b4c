"""A process that ends, or is interrupted, during a run exits cleanly (issue 18).

Each case runs a small script in a fresh interpreter: the widget shown and the script ending
during its run; a comparison (Score-CAM on the default model) running at exit; Ctrl-C (SIGINT)
during ``run(blocking=True)`` and during ``wait()``; a Jupyter kernel shut down during a run.
The scripts print what they measured as one JSON line (``RESULT {...}``).
"""

from __future__ import annotations

import gc
import json
import os
import signal
import subprocess
import sys
import textwrap
import weakref
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ALARMING = ("terminate called", "Fatal Python error", "Exception ignored", "Traceback",
            "Segmentation", "core dumped", "still running at exit")

#: Run first in every script: an atexit handler registered before the package is imported runs
#: after the package's own (atexit is last in, first out), and says what was left running.
PRELUDE = """
import atexit, json, threading
def _report():
    alive = [t.name for t in threading.enumerate() if t.name.startswith("opticam")]
    print("AT EXIT", json.dumps({"alive": alive, **EXTRA}), flush=True)
EXTRA = {}
atexit.register(_report)
"""

#: A model the scripts can watch: counts forward passes, prints RUNNING once the run is going.
#: Also a snapshot of what the product bar says must not change.
WATCH = """
import sys, torch
from torch import nn
calls = [0]
def count(_m, _i, _o):
    calls[0] += 1
    if calls[0] == START_AT and (GATE is None or GATE.is_set()):
        print("RUNNING", flush=True)
def state(model):
    return {"modes": [m.training for m in model.modules()],
            "flags": [p.requires_grad for p in model.parameters()],
            "grads": [p.grad is None for p in model.parameters()],
            "hooks": sum(len(m._forward_hooks) + len(m._forward_pre_hooks)
                         + len(m._backward_hooks) for m in model.modules()),
            "sum": float(sum(p.detach().double().sum() for p in model.parameters()))}
"""

#: A CNN big enough that one Opti-CAM iteration takes a few ms on 128 × 128 images.
CNN = """
torch.manual_seed(0)
model = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
                      nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                      nn.Flatten(), nn.Linear(32, 5)).train()
model[0].weight.requires_grad_(False)  # a frozen layer and train mode must come back as they were
"""


def run_script(body: str, *, setup: tuple[str, ...] = (), interrupt: bool = False,
               timeout: float = 600) -> tuple[int, str, str, dict, dict]:
    """Run ``setup`` and ``body`` in a new interpreter; with ``interrupt`` send SIGINT once the
    script prints RUNNING.

    Returns the exit status, stdout, stderr, the script's RESULT and the AT EXIT report.
    """
    code = "".join(textwrap.dedent(part) for part in (PRELUDE, *setup, body))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=_default_signals)
    lines = []
    if interrupt:
        for line in proc.stdout:
            lines.append(line)
            if line.strip() == "RUNNING":
                proc.send_signal(signal.SIGINT)
                break
    out, err = proc.communicate(timeout=timeout)
    out = "".join(lines) + out

    def tagged(tag: str) -> dict:
        found = [line[len(tag):] for line in out.splitlines() if line.startswith(tag)]
        return json.loads(found[-1]) if found else {}

    return proc.returncode, out, err, tagged("RESULT "), tagged("AT EXIT ")


def _default_signals() -> None:
    """In the child: SIGINT and SIGTERM at their defaults, as in a terminal. A parent that
    ignores SIGINT (a pytest-xdist worker, a shell's background job) would pass the ignoring
    on, and Python then installs no KeyboardInterrupt handler: the script would not see Ctrl-C."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)


def assert_clean(err: str) -> None:
    assert not any(word in err for word in ALARMING), err


def assert_interrupted(code: int, err: str) -> None:
    """Exit status and stderr of a script ended by an uncaught KeyboardInterrupt."""
    assert code in (-signal.SIGINT, 128 + signal.SIGINT), (code, err)
    lines = err.strip().splitlines()
    assert lines[0] == "Traceback (most recent call last):" and lines[-1] == "KeyboardInterrupt"
    assert err.count("Traceback") == 1
    assert not any(word in err for word in ALARMING if word != "Traceback"), err


# ---------------------------------------------------------------------------- process exit


@pytest.mark.slow
def test_show_then_exit_during_the_run():
    """The issue's two lines: the run is going when the script ends; exit status 0."""
    code, out, err, _, at_exit = run_script("""
        from opticam_widgets import OptiCAMWidget, load_default_model, sample_image
        w = OptiCAMWidget(load_default_model()).show(sample_image("chelsea"))
        from opticam_widgets.support.jobs import running_jobs
        EXTRA["jobs at the end of the script"] = len(running_jobs())
    """)
    assert code == 0, err
    assert_clean(err)
    assert err == ""
    assert out.startswith("OptiCAMWidget(model=efficientnet_lite0")
    assert at_exit["jobs at the end of the script"] == 1  # the run was going
    assert at_exit["alive"] == []  # and its thread was joined before the interpreter went


@pytest.mark.slow
def test_comparison_running_at_exit():
    """Score-CAM (one forward per channel, batched) is mid-run when the script ends."""
    code, out, err, result, at_exit = run_script(setup=(WATCH,), body="""
        import threading
        from opticam_widgets import OptiCAMWidget, load_default_model, sample_image
        from opticam_widgets.support.jobs import running_jobs
        START_AT, GATE = 2, None
        bundle = load_default_model()
        w = OptiCAMWidget(bundle)
        w.set_images(sample_image("chelsea"), run=False)
        handle = bundle.model.register_forward_hook(count)
        w.controls.compare.value = "scorecam"
        while calls[0] < 2:  # the baseline's batched forwards have started
            threading.Event().wait(0.05)
        EXTRA["jobs"] = [job.name for job in running_jobs()]
        EXTRA["calls"] = calls
        EXTRA["at end"] = calls[0]
    """)
    assert code == 0, err
    assert err == ""
    assert at_exit["jobs"] == ["baseline"] and at_exit["alive"] == []
    # cancelled at its next forward pass: at most the one in flight finishes
    assert at_exit["calls"][0] - at_exit["at end"] <= 1


# ---------------------------------------------------------------------------- Ctrl-C


def test_sigint_during_a_blocking_run():
    code, out, err, result, at_exit = run_script(setup=(WATCH, CNN), body="""
        from opticam_widgets import OptiCAMWidget
        START_AT, GATE = 5, None
        before = state(model)
        handle = model.register_forward_hook(count)
        w = OptiCAMWidget(model, preprocess={"size": None})
        w.set_images(torch.rand(3, 128, 128), run=False)
        w.early_stop = False
        w.controls.iterations.value = 500
        try:
            w.run(blocking=True)
        except KeyboardInterrupt:
            handle.remove()
            from opticam_widgets.support.jobs import running_jobs
            print("RESULT", json.dumps({
                "same": state(model) == before, "running": w.running, "error": repr(w.error),
                "jobs": len(running_jobs()), "status": w.controls.status.value}), flush=True)
            raise
    """, interrupt=True)
    assert_interrupted(code, err)
    assert result["same"], "the model changed"
    assert not result["running"] and result["jobs"] == 0 and result["error"] == "None"
    assert "interrupted" in result["status"]
    assert at_exit["alive"] == []


def test_sigint_during_a_blocking_explain():
    """The engine alone: Ctrl-C in ``OptiCAM.explain`` propagates and leaves the model as it was
    (no hooks, modes, requires_grad, grads, weights; the folded copy is the engine's own)."""
    code, out, err, result, at_exit = run_script(setup=(WATCH, CNN), body="""
        from opticam_widgets import OptiCAM
        START_AT, GATE = None, None
        before = state(model)
        steps = []
        def callback(step, progress):
            steps.append(step)
            if step == 5:
                print("RUNNING", flush=True)
        cam = OptiCAM(model, preprocess={"size": None}, max_iter=500, tol=None)
        try:
            cam.explain(torch.rand(3, 128, 128), 1, callback=callback)
        except KeyboardInterrupt:
            print("RESULT", json.dumps({"same": state(model) == before, "state": state(model),
                                        "steps": steps[-1], "grad": torch.is_grad_enabled()}),
                  flush=True)
            raise
    """, interrupt=True)
    assert_interrupted(code, err)
    assert result["same"], result["state"]
    assert result["state"]["hooks"] == 0 and result["grad"]
    assert 5 <= result["steps"] < 500


def test_sigint_during_wait_stops_the_background_run():
    code, out, err, result, at_exit = run_script(setup=(WATCH, CNN), body="""
        import signal, threading
        from opticam_widgets import OptiCAMWidget
        START_AT, GATE = 5, threading.Event()
        at_signal = []
        def on_sigint(sig, frame):
            at_signal.append(calls[0])
            signal.default_int_handler(sig, frame)
        signal.signal(signal.SIGINT, on_sigint)
        before = state(model)
        handle = model.register_forward_hook(count)
        w = OptiCAMWidget(model, preprocess={"size": None})
        w.set_images(torch.rand(3, 128, 128), run=False)
        w.early_stop = False
        w.controls.iterations.value = 500
        try:
            w.run()
            GATE.set()  # the model prints RUNNING only once the main thread is in wait()
            w.wait()
        except KeyboardInterrupt:
            after = calls[0]
            handle.remove()
            from opticam_widgets.support.jobs import running_jobs
            print("RESULT", json.dumps({
                "same": state(model) == before, "running": w.running,
                "jobs": len(running_jobs()), "forwards after the signal": after - at_signal[0],
                "iterations": w.result.iterations if w.result else None,
                "status": w.controls.status.value}), flush=True)
            raise
    """, interrupt=True)
    assert_interrupted(code, err)
    assert result["same"], "the model changed"
    assert not result["running"] and result["jobs"] == 0
    # the forward in flight when the signal came, at most one more, and no metrics
    assert result["forwards after the signal"] <= 2
    assert result["iterations"] is not None and result["iterations"] < 500
    assert "interrupted" in result["status"]
    assert at_exit["alive"] == []


# ---------------------------------------------------------------------------- close, collect


def test_close_cancels_joins_and_lets_the_widget_be_collected():
    import torch
    from torch import nn

    from opticam_widgets.support.jobs import running_jobs
    from opticam_widgets.widget import OptiCAMWidget

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                        nn.Flatten(), nn.Linear(8, 3)).eval()
    widget = OptiCAMWidget(net, preprocess={"size": None})
    widget.set_images(torch.rand(3, 64, 64), run=False)
    widget.early_stop = False
    widget.controls.iterations.value = 500
    widget.controls.compare.value = "channel-mean"
    widget.run()
    assert running_jobs()
    widget.close()
    assert running_jobs() == []
    ref = weakref.ref(widget)
    del widget
    gc.collect()
    assert ref() is None  # nothing of the package keeps a closed widget alive


def test_cancel_all_stops_tracked_threads_and_worker_jobs():
    """The registry the atexit handler uses: every kind of job is cancelled and waited for."""
    import threading

    from opticam_widgets.support.jobs import Worker, cancel_all, running_jobs, tracked

    started, steps = threading.Barrier(3), []

    def own_thread() -> None:  # a dataset engine's worker, say
        with tracked("own") as job:
            started.wait(30)
            while not job.cancel.wait(0.01):
                steps.append(1)

    def worker_job(cancel: threading.Event) -> None:
        started.wait(30)
        cancel.wait(60)

    thread = threading.Thread(target=own_thread, daemon=True)
    thread.start()
    worker = Worker("test-worker")
    worker.submit(worker_job, "job")
    started.wait(30)
    assert sorted(job.name for job in running_jobs()) == ["job", "own"]
    assert cancel_all(timeout=30)
    assert running_jobs() == [] and not worker.threads()
    thread.join(30)
    assert not thread.is_alive()


# ---------------------------------------------------------------------------- kernel


@pytest.mark.slow
def test_kernel_shutdown_during_a_run():
    """A Jupyter kernel asked to shut down (as by a restart) while the widget runs exits with
    status 0, on its own (before Jupyter's SIGTERM, sent 2.5 s after the request)."""
    jupyter_client = pytest.importorskip("jupyter_client")
    km = jupyter_client.KernelManager(kernel_name="python3")
    km.start_kernel(cwd=str(ROOT), env={**os.environ, "PYTHONPATH": str(ROOT)})
    process = km.provisioner.process
    client = km.client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=120)
        reply = client.execute_interactive(textwrap.dedent("""
            from opticam_widgets import OptiCAMWidget, load_default_model, sample_image
            from opticam_widgets.support.jobs import running_jobs
            w = OptiCAMWidget(load_default_model())
            w.early_stop = False
            w.controls.iterations.value = 500
            w.show(sample_image("chelsea"))
            assert [job.name for job in running_jobs()] == ["opticam"]
        """), timeout=300, output_hook=lambda msg: None)
        assert reply["content"]["status"] == "ok", reply["content"]
        km.request_shutdown()  # what Jupyter sends on shutdown and restart
        status = process.wait(timeout=120)
    finally:
        client.stop_channels()
        km.shutdown_kernel(now=True)
    assert status == 0
