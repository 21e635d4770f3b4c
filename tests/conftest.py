"""Shared pytest fixtures. Each fixture below is self-contained; add new ones after it."""

from __future__ import annotations

import socket
from collections.abc import Iterator

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
