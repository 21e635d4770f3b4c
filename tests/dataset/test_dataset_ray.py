"""The dataset on Ray beyond one process: a two-node cluster started with ``ray start`` (a head
and a worker node on this machine) that loses its worker node mid-run, and a local Ray started by
the call that leaves no process behind.

The nodes are real ``ray start --block`` processes, each in its own session with its own
``--temp-dir`` and free ports, so the test touches no other Ray on the machine: every process a
node starts stays in that node's process group, which is how the worker node is killed
(``SIGKILL`` to its raylet's process group) and how the test proves nothing is left.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from test_dataset_runs import KW, N_IMAGES, assert_same_maps, make_folder, tiny

from opticam_widgets.dataset import explain_dataset, load_results
from opticam_widgets.inputs.preprocess import Preprocess
from opticam_widgets.model.bundle import ModelBundle

HERE = Path(__file__).resolve().parent  # this folder's test modules, imported by the children
TESTS = HERE.parent
ROOT = TESTS.parent
#: Ports a node would otherwise take at fixed defaults; each node gets free ones.
NODE_PORTS = ("--node-manager-port", "--object-manager-port", "--metrics-export-port",
              "--dashboard-agent-listen-port", "--dashboard-agent-grpc-port",
              "--runtime-env-agent-port")
#: The cluster's own token (not ``~/.ray/auth_token``, shared with any other Ray here).
AUTH = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_folder(tmp_path_factory.mktemp("tiny_photos"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


class RayNode:
    """One ``ray start --block`` node in a session of its own (its pid is the session id).

    Args:
        temp: The node's ``--temp-dir`` (short: Ray's socket paths must fit 107 bytes).
        args: More ``ray start`` arguments (``--head --port=N`` or ``--address=...``).
    """

    def __init__(self, temp: Path, *args: str) -> None:
        self.temp = temp
        ray = Path(sys.executable).with_name("ray")
        ports = [f"{flag}={free_port()}" for flag in NODE_PORTS]
        env = {**os.environ, **AUTH, "RAY_USAGE_STATS_ENABLED": "0",
               "PYTHONPATH": os.pathsep.join([str(ROOT), str(TESTS), str(HERE)])}
        self.log = open(temp / "ray-start.log", "w")  # noqa: SIM115 (closed in kill)
        self.proc = subprocess.Popen(
            [str(ray), "start", "--block", f"--temp-dir={temp}", "--disable-usage-stats",
             *ports, *args],
            env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)

    def processes(self) -> list:
        """Every live process of this node: its session, or its temp dir on the command line."""
        import psutil

        found = []
        for proc in psutil.process_iter(["cmdline"]):
            try:
                if os.getsid(proc.pid) == self.proc.pid and proc.status() != "zombie" \
                        or str(self.temp) in " ".join(proc.info["cmdline"] or ()):
                    found.append(proc)
            except (OSError, psutil.Error):  # gone meanwhile
                continue
        return found

    def raylet(self) -> int:
        """The pid of this node's raylet."""
        pids = [p.pid for p in self.processes() if p.name() == "raylet"]
        assert len(pids) == 1, self.describe()
        return pids[0]

    def kill(self) -> None:
        """SIGKILL the raylet's process group (the whole node); reap ``ray start``."""
        import psutil

        try:
            os.killpg(os.getpgid(self.raylet()), signal.SIGKILL)
        except (AssertionError, ProcessLookupError):  # already down: kill what is left
            for proc in self.processes():
                try:
                    proc.kill()
                except psutil.Error:
                    continue
        self.proc.wait(timeout=60)
        self.log.close()

    def started(self) -> bool:
        """Whether ``ray start`` said the node is up (its raylet registered with the GCS)."""
        return "Ray runtime started." in (self.temp / "ray-start.log").read_text()

    def describe(self) -> str:
        return "\n".join(f"{p.pid} {p.name()}" for p in self.processes()) + "\n" + \
            (self.temp / "ray-start.log").read_text()[-3000:]


def wait_for(what: str, check, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def start_node(nodes: list[RayNode], temp: Path, *args: str, tries: int = 3) -> RayNode:
    """Start a node (appended to ``nodes``, for the clean-up) and wait until it is up.

    ``ray start`` gives a node 30 s to register; on a loaded machine it can miss that (the
    command exits), so a node that died starting is started again, in a fresh temp dir.
    """
    for attempt in range(tries):
        (temp / str(attempt)).mkdir(parents=True)
        node = RayNode(temp / str(attempt), *args)
        nodes.append(node)
        wait_for(f"node {temp.name}",
                 lambda node=node: node.started() or node.proc.poll() is not None)
        if node.proc.poll() is None:
            return node
        node.kill()  # whatever it left
    pytest.fail(f"node {temp.name} never started:\n{node.describe()}")


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def gone(nodes: list[RayNode]) -> bool:
    return not any(node.processes() for node in nodes)


DRIVER = """
import sys, time
from pathlib import Path
import ray
from slow_net import SlowNet
from test_dataset_runs import KW
from opticam_widgets.dataset import explain_dataset, load_results
from opticam_widgets.inputs.preprocess import Preprocess
from opticam_widgets.model.bundle import ModelBundle

folder, out, killed = sys.argv[1:4]

def first_batch_then_wait(done, total):
    if done and not Path(killed).exists():
        print("done", done, flush=True)  # the test kills the worker node now
        deadline = time.monotonic() + 120
        while not Path(killed).exists() and time.monotonic() < deadline:
            time.sleep(0.05)

def alive():
    return len([n for n in ray.nodes() if n["Alive"]])

ray.init(log_to_driver=False)  # RAY_ADDRESS
deadline = time.monotonic() + 120
while alive() < 2 and time.monotonic() < deadline:
    time.sleep(0.2)
print("nodes", alive(), flush=True)
model = ModelBundle(SlowNet().eval(), Preprocess(size=(32, 32)), name="slow")
res = explain_dataset(model, folder, out, engine="ray", ray_actors=2,
                      callback=first_batch_then_wait, **KW)
deadline = time.monotonic() + 120  # the GCS marks the killed node dead after its health checks
while alive() > 1 and time.monotonic() < deadline:
    time.sleep(0.5)
print("finished", len(res.table), "rows; nodes alive", alive(), flush=True)
ray.shutdown()
"""


def drive(folder: Path, out: Path, worker: RayNode, env: dict[str, str]
          ) -> tuple[int, list[str], str]:
    """Run the dataset in a driver process pointed at the cluster by ``RAY_ADDRESS`` (as a
    user would); kill ``worker`` when the first batch arrives. Returns the images done at
    the kill, the Ray processes the worker node was running then, and the driver's output."""
    flag = out.parent / "killed"
    proc = subprocess.Popen([sys.executable, "-c", DRIVER, str(folder), str(out), str(flag)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    lines = []
    try:
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("done "):
                ran = [p.name() for p in worker.processes() if p.name().startswith("ray::")]
                worker.kill()
                flag.touch()
                done = int(line.split()[1])
                break
        else:
            proc.wait()
            pytest.fail("the run ended before its first batch: " + "".join(lines)[-3000:])
        output = "".join(lines) + proc.communicate(timeout=600)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0 and "finished" in output, output[-3000:]
    return done, ran, output


@pytest.mark.slow
def test_two_node_ray_start_cluster_loses_its_worker_node_mid_run(folder):
    """``ray start --head`` and ``ray start --address`` on this machine; a driver process runs
    the dataset through ``RAY_ADDRESS``; the worker node (running part of the pipeline) is
    SIGKILLed after the first batch arrives: every image once, maps equal to the local
    engine's, and every process of both nodes gone at the end."""
    pytest.importorskip("ray")
    pytest.importorskip("psutil")
    from slow_net import SlowNet

    model = ModelBundle(SlowNet().eval(), Preprocess(size=(32, 32)), name="slow")
    scratch = Path(tempfile.mkdtemp(prefix="rt", dir="/tmp"))
    local = explain_dataset(model, folder, scratch / "local", **KW)
    port = free_port()
    nodes: list[RayNode] = []
    env = {**os.environ, **AUTH, "RAY_ADDRESS": f"127.0.0.1:{port}",
           "RAY_USAGE_STATS_ENABLED": "0",
           "PYTHONPATH": os.pathsep.join([str(ROOT), str(TESTS), str(HERE)])}
    try:
        start_node(nodes, scratch / "h", "--head", f"--port={port}", "--num-cpus=3",
                   "--include-dashboard=false")
        worker = start_node(nodes, scratch / "w", f"--address=127.0.0.1:{port}", "--num-cpus=2")
        done, ran, output = drive(folder, scratch / "ray", worker, env)
        res = load_results(scratch / "ray")
    finally:
        for node in nodes[::-1]:
            node.kill()  # (again for the worker: whatever is left of it)
        wait_for("every Ray process to end", lambda: gone(nodes), timeout=30)
        shutil.rmtree(scratch, ignore_errors=True)
    assert "nodes 2" in output and "nodes alive 1" in output, output[-3000:]
    assert done < N_IMAGES  # mid-run
    assert ran, "the worker node ran no part of the pipeline"
    assert_same_maps(res, local)


def test_ray_started_by_the_call_leaves_no_process(folder, tmp_path):
    ray = pytest.importorskip("ray")
    psutil = pytest.importorskip("psutil")
    assert not ray.is_initialized()
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    paths = sorted(str(p) for p in folder.glob("*.png"))[:2]
    res = explain_dataset(tiny(), paths, tmp_path / "r", engine="ray", **KW)
    assert len(res.table) == 2 and not ray.is_initialized()
    left = [p for p in psutil.Process().children(recursive=True) if p.pid not in before]
    assert not left, [p.name() for p in left]  # right after the call, not a minute later
