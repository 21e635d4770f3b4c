"""SIGTERM and SIGHUP end a dataset run like Ctrl-C: complete shards kept, a line on resuming.

A closed SSH session (SIGHUP), a batch scheduler's stop or ``kill`` (SIGTERM) would otherwise
end the process at once and lose the rows not yet written. During a run,
:func:`stop_on_signals` turns both into a request to stop: the engine stops within one
iteration, writes the rows already complete, and the run raises :class:`RunStopped` (a
``KeyboardInterrupt``, so an uncaught one ends a script with a non-zero status, like Ctrl-C).
Handlers are only installed from the main thread and only over the default action: a program
with its own SIGTERM handler keeps it. The previous handlers are restored after the run.

Example:
    >>> import threading
    >>> with stop_on_signals(threading.Event()) as caught:
    ...     caught.signum is None
    True
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any

__all__ = ["STOP_SIGNALS", "Caught", "RunStopped", "stop_on_signals"]

#: The signals that stop a run cleanly (those that exist on this platform).
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP")
                     if hasattr(signal, name))


class RunStopped(KeyboardInterrupt):
    """A dataset run stopped by SIGTERM or SIGHUP after writing its complete rows.

    Attributes:
        signum: The signal's number.
        out: The results folder.
        stored: Images now in the store.
    """

    def __init__(self, signum: int, out: str, stored: int) -> None:
        self.signum, self.out, self.stored = signum, out, stored
        super().__init__(f"explain_dataset stopped by {signal.Signals(signum).name}: "
                         f"{stored} images are stored in {out!r}; call explain_dataset again "
                         "with the same arguments (resume=True, the default) to finish")


class Caught:
    """The signal that asked the run to stop (``signum``), or ``None``."""

    def __init__(self) -> None:
        self.signum: int | None = None


@contextlib.contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[Caught]:
    """Within the block, SIGTERM / SIGHUP set ``stop`` (recorded in the yielded object)."""
    caught = Caught()
    if threading.current_thread() is not threading.main_thread():
        yield caught
        return

    def handler(signum: int, frame: Any) -> None:
        caught.signum = signum
        stop.set()

    saved = {}
    for sig in STOP_SIGNALS:
        if signal.getsignal(sig) == signal.SIG_DFL:
            saved[sig] = signal.signal(sig, handler)
    try:
        yield caught
    finally:
        for sig, old in saved.items():
            signal.signal(sig, old)
