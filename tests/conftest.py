"""Shared pytest fixtures. Each fixture below is self-contained; add new ones after it."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[object]]:
    """Block every outgoing connection for the duration of a test.

    ``socket.socket.connect``, ``socket.socket.connect_ex`` and ``socket.create_connection``
    raise ``OSError``; the fixture yields the list of attempted addresses, so a test can assert
    that it stayed empty (a library may swallow the error and fall back silently).
    """
    attempts: list[object] = []

    def refuse(*args: object, **kwargs: object) -> None:
        address = args[1] if len(args) > 1 else args[0] if args else kwargs.get("address")
        attempts.append(address)
        raise OSError(f"network access blocked by the no_network fixture: {address!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    yield attempts


@pytest.fixture(scope="session")
def bundle() -> Any:
    """The embedded default model (EfficientNet-Lite0 with its preprocessing and labels).

    Built once per process (:func:`~opticam_widgets.model.zoo.load_default_model` shares the network
    between calls anyway); tests must leave it as they found it, as the product does.
    """
    from opticam_widgets.model.zoo import load_default_model

    return load_default_model()


#: Test files that start Ray. Under pytest-xdist (``make unit``: two workers) they share one
#: worker, in turn: two local Ray clusters starting at once on two cores can time out.
RAY_TEST_FILES = ("dataset/test_dataset.py", "dataset/test_dataset_ray.py",
                  "dataset/test_dataset_runs.py", "dataset/test_run_options.py")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Group the tests for ``--dist loadgroup``: one group per file, the Ray files together."""
    for item in items:
        path = item.path.as_posix()
        ray = any(path.endswith("tests/" + name) for name in RAY_TEST_FILES)
        item.add_marker(pytest.mark.xdist_group("ray" if ray else path))
