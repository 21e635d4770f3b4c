"""One-job-at-a-time background runner for the widget.

The model is used by one job at a time (Opti-CAM, baselines and metrics hook and freeze it), so
jobs are serialized: submitting a job cancels the running one and the new thread first joins
its predecessor. The join happens in the new thread, not in the kernel's: a slow job that cannot
be cancelled (a baseline) never blocks the notebook.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

__all__ = ["Job", "Worker"]


class Job:
    """A submitted job: its thread (``None`` when run in the caller's thread) and cancel event."""

    def __init__(self, name: str, thread: threading.Thread | None = None) -> None:
        #: Short description ("opticam", "baseline", ...).
        self.name = name
        #: Set to ask the job to stop (passed to ``OptiCAM.explain`` as ``cancel``).
        self.cancel = threading.Event()
        #: The daemon thread running the job, or ``None`` for a job run in the caller's thread.
        self.thread = thread
        #: Set when the job's function has returned or raised.
        self.done = threading.Event()


class Worker:
    """Runs jobs one after another in daemon threads; a new job cancels the previous one.

    Example:
        >>> worker = Worker()
        >>> job = worker.submit(lambda cancel: None, "noop")
        >>> worker.join() and job.done.is_set()
        True
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._job: Job | None = None
        self._threads: list[threading.Thread] = []
        self._jobs: list[Job] = []  # submitted, maybe unfinished

    @property
    def current(self) -> Job | None:
        """The most recently submitted job (running or finished)."""
        return self._job

    @property
    def busy(self) -> bool:
        """Whether the latest job has not finished yet."""
        job = self._job
        return job is not None and not job.done.is_set()

    def submit(self, fn: Callable[[threading.Event], None], name: str = "job", *,
               cancel_previous: bool = True) -> Job:
        """Run ``fn(cancel_event)`` in a new daemon thread, after the jobs already queued.

        The new thread waits for the previous job to end before calling ``fn``, and skips it if
        it was itself cancelled meanwhile. ``fn`` must handle its own exceptions.

        Args:
            fn: The job; it receives its cancel event.
            name: Short description (thread name).
            cancel_previous: Cancel every unfinished job first (default); ``False`` queues the
                job behind them.
        """
        with self._lock:
            prev = self._job
            if cancel_previous:
                self._cancel_all()
            job = Job(name)

            def body() -> None:
                try:
                    if prev is not None:
                        prev.done.wait()
                    if not job.cancel.is_set():
                        fn(job.cancel)
                finally:
                    job.done.set()

            job.thread = threading.Thread(target=body, name=f"opticam-widget-{name}",
                                          daemon=True)
            self._job = job
            self._jobs.append(job)
            self._threads = [t for t in self._threads if t.is_alive()] + [job.thread]
            job.thread.start()
        return job

    def run_here(self, fn: Callable[[threading.Event], None], name: str = "job") -> None:
        """Cancel and wait for the current jobs, then run ``fn(cancel_event)`` in this thread.

        Exceptions from ``fn`` propagate to the caller. :meth:`cancel` (e.g. from a model
        callback or another thread) stops it like a background job.
        """
        with self._lock:
            prev = self._job
            self._cancel_all()
            job = Job(name)
            self._job = job
            self._jobs.append(job)
        try:
            if prev is not None:
                prev.done.wait()
            fn(job.cancel)
        finally:
            job.done.set()

    def cancel(self) -> None:
        """Ask every unfinished job to stop (an Opti-CAM run ends within one iteration)."""
        with self._lock:
            self._cancel_all()

    def _cancel_all(self) -> None:
        self._jobs = [j for j in self._jobs if not j.done.is_set()]
        for job in self._jobs:
            job.cancel.set()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for every job and its thread to end; ``True`` when none is left running."""
        deadline = None if timeout is None else time.monotonic() + timeout

        def left() -> float | None:
            return None if deadline is None else max(0.0, deadline - time.monotonic())

        job = self._job
        if job is not None and job.thread is None:
            job.done.wait(left())
        for thread in list(self._threads):
            if thread is not threading.current_thread():
                thread.join(left())
        self._threads = [t for t in self._threads if t.is_alive()]
        return not self._threads and (job is None or job.done.is_set())

    def threads(self) -> list[threading.Thread]:
        """Live threads started by this worker (for tests and diagnostics)."""
        return [t for t in self._threads if t.is_alive()]
