"""Background jobs of the package, and their clean end when the process exits.

Every thread the package starts (the widget's runs and comparisons, the dataset engine's
workers) runs a :class:`Job`: a name, a cancel event the work checks at least once per
iteration, and a done event. Running jobs are kept in one registry; at interpreter exit
:func:`cancel_all` cancels every one of them and joins its thread, so no thread is still inside
torch while the interpreter and torch's own globals are torn down (which aborts the process with
``terminate called without an active exception``, exit status 134).

Why daemon threads and :mod:`atexit`: the interpreter joins *non*-daemon threads before it runs
the :mod:`atexit` handlers, so a non-daemon worker would make a script wait for a whole run
before exiting (and a kernel shutdown wait for it too), with nobody left to set its cancel
event. Daemon threads are still running, untouched, when the :mod:`atexit` handlers run: the
handler here cancels them first and then joins them, which takes at most one Opti-CAM
iteration (or one forward pass of a baseline). This module imports nothing but the standard
library, so every part of the package (core or UI) may use it.

Code that runs its own threads registers them with :func:`tracked`; :class:`Worker` runs jobs
one at a time, each in a daemon thread, and is what the widget uses.

Example:
    >>> worker = Worker()
    >>> job = worker.submit(lambda cancel: None, "noop")
    >>> worker.join(timeout=10) and job.done.is_set()
    True
    >>> running_jobs()
    []
"""

from __future__ import annotations

import atexit
import contextlib
import sys
import threading
import time
from collections.abc import Callable, Iterator

__all__ = ["EXIT_TIMEOUT_S", "Job", "Worker", "cancel_all", "exiting", "running_jobs", "tracked"]

#: Seconds :func:`cancel_all` waits at interpreter exit for the cancelled jobs to end.
EXIT_TIMEOUT_S = 60.0

_registry_lock = threading.Lock()
_registry: dict[int, Job] = {}  # id(job) -> job, for the jobs not done yet
_exiting = threading.Event()  # set when the interpreter exits


class Job:
    """One unit of background work: its cancel and done events, and the thread running it.

    Args:
        name: Short description ("opticam", "baseline", ...).
        thread: The thread running it (default: the calling thread).
        owns_thread: Whether ``thread`` was started for this job alone (it is then joined by
            :meth:`wait`, so that it has left torch when the wait returns).
    """

    def __init__(self, name: str, thread: threading.Thread | None = None, *,
                 owns_thread: bool = False) -> None:
        #: Short description.
        self.name = name
        #: Set to ask the job to stop (passed to ``OptiCAM.explain`` as ``cancel``).
        self.cancel = threading.Event()
        #: The thread running the job.
        self.thread = thread if thread is not None else threading.current_thread()
        #: Whether :attr:`thread` runs this job only.
        self.owns_thread = owns_thread
        #: Set when the job's function has returned or raised.
        self.done = threading.Event()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the job (and its own thread) to end; ``True`` when it has.

        A job of the calling thread is not waited for: it cannot end while we wait.
        """
        if self.thread is threading.current_thread():
            return self.done.is_set()
        deadline = None if timeout is None else time.monotonic() + timeout
        if not self.done.wait(_left(deadline)):
            return False
        if self.owns_thread and self.thread.ident is not None:
            self.thread.join(_left(deadline))
            return not self.thread.is_alive()
        return True

    def __repr__(self) -> str:
        state = "done" if self.done.is_set() else "cancelled" if self.cancel.is_set() else "running"
        return f"Job({self.name!r}, {state})"


def _left(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - time.monotonic())


def _add(job: Job) -> None:
    with _registry_lock:
        _registry[id(job)] = job


def _finish(job: Job) -> None:
    """Mark ``job`` done and drop it from the registry."""
    job.done.set()
    with _registry_lock:
        _registry.pop(id(job), None)


def running_jobs() -> list[Job]:
    """The jobs of the package that have not finished yet (for diagnostics and tests)."""
    with _registry_lock:
        return [job for job in _registry.values() if not job.done.is_set()]


def cancel_all(timeout: float | None = EXIT_TIMEOUT_S) -> bool:
    """Cancel every running job of the package, then wait for them to end.

    Called at interpreter exit; safe to call at any time.

    Args:
        timeout: Seconds to wait in total; ``None`` waits as long as it takes.

    Returns:
        ``True`` when no job is left running (the calling thread's own jobs excepted).
    """
    jobs = running_jobs()
    for job in jobs:
        job.cancel.set()
    deadline = None if timeout is None else time.monotonic() + timeout
    return all([job.wait(_left(deadline)) for job in jobs])


@contextlib.contextmanager
def tracked(name: str) -> Iterator[Job]:
    """Register the work done in this block as a job of the calling thread.

    For code that starts its own threads (a dataset engine's workers): run each thread's work
    in ``with tracked("name") as job:`` and stop when ``job.cancel`` is set; the process then
    exits cleanly even when the program ends during the work.

    Example:
        >>> with tracked("demo") as job:
        ...     job in running_jobs()
        True
        >>> job.done.is_set()
        True
    """
    job = Job(name)
    _add(job)
    try:
        yield job
    finally:
        _finish(job)


class Worker:
    """Runs jobs one after another, each in a daemon thread; a new job cancels the previous.

    The model is used by one job at a time (Opti-CAM, baselines and metrics hook and freeze
    it), so jobs are serialized: each new thread first waits for its predecessor. The wait
    happens in the new thread, not in the caller's: a slow job never blocks the notebook.

    Args:
        prefix: Thread names are ``"{prefix}-{job name}"``.

    Example:
        >>> worker = Worker()
        >>> job = worker.submit(lambda cancel: None, "noop")
        >>> worker.join(timeout=10) and job.done.is_set()
        True
    """

    def __init__(self, prefix: str = "opticam") -> None:
        self._prefix = prefix
        self._lock = threading.Lock()
        self._jobs: list[Job] = []  # unfinished jobs, in submission order
        self._latest: Job | None = None

    @property
    def busy(self) -> bool:
        """Whether the latest job has not finished yet."""
        job = self._latest
        return job is not None and not job.done.is_set()

    def submit(self, fn: Callable[[threading.Event], None], name: str = "job", *,
               cancel_previous: bool = True,
               on_skip: Callable[[], None] | None = None) -> Job:
        """Run ``fn(cancel_event)`` in a new daemon thread, after the jobs already queued.

        The new thread waits for the previous job to end before calling ``fn``, and skips it if
        it was itself cancelled meanwhile (then calls ``on_skip()``, if given). ``fn`` and
        ``on_skip`` must handle their own exceptions.

        Args:
            fn: The job; it receives its cancel event.
            name: Short description (thread name).
            cancel_previous: Cancel every unfinished job first (default); ``False`` queues the
                job behind them.
            on_skip: Called in the job's thread when it was cancelled before it started.
        """
        with self._lock:
            prev = self._queue_new(cancel_previous)

            def body() -> None:
                try:
                    if prev is not None:
                        prev.wait()
                    if not job.cancel.is_set():
                        fn(job.cancel)
                    elif on_skip is not None:
                        on_skip()
                finally:
                    _finish(job)

            thread = threading.Thread(target=body, name=f"{self._prefix}-{name}", daemon=True)
            job = Job(name, thread, owns_thread=True)
            self._add(job)
            thread.start()
        return job

    def run_here(self, fn: Callable[[threading.Event], None], name: str = "job") -> None:
        """Cancel and wait for the current jobs, then run ``fn(cancel_event)`` in this thread.

        Exceptions from ``fn`` propagate, ``KeyboardInterrupt`` included. :meth:`cancel` (from
        a model callback or another thread) stops it like a background job.
        """
        with self._lock:
            prev = self._queue_new(cancel_previous=True)
            job = Job(name)
            self._add(job)
        try:
            if prev is not None:
                prev.wait()
            fn(job.cancel)
        finally:
            _finish(job)

    def _queue_new(self, cancel_previous: bool) -> Job | None:
        """Forget finished jobs, cancel the others if asked; the job to wait for."""
        self._jobs = [j for j in self._jobs if not j.done.is_set()]
        if cancel_previous:
            for job in self._jobs:
                job.cancel.set()
        return self._latest

    def _add(self, job: Job) -> None:
        self._jobs.append(job)
        self._latest = job
        _add(job)

    def cancel(self) -> None:
        """Ask every unfinished job to stop (an Opti-CAM run ends within one iteration)."""
        with self._lock:
            for job in self._jobs:
                job.cancel.set()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for every job and its thread to end; ``True`` when none is left running."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            jobs = list(self._jobs)
        return all([job.wait(_left(deadline)) for job in jobs])

    def threads(self) -> list[threading.Thread]:
        """Live threads started by this worker (for tests and diagnostics)."""
        with self._lock:
            return [j.thread for j in self._jobs if j.owns_thread and j.thread.is_alive()]


def exiting() -> bool:
    """Whether the interpreter is exiting.

    A cancelled job should then skip any extra work (drawing, metrics) and return at once.
    """
    return _exiting.is_set()


def _at_exit() -> None:
    _exiting.set()
    if not cancel_all(EXIT_TIMEOUT_S):
        left = ", ".join(job.name for job in running_jobs())
        print(f"opticam_widgets: background jobs still running at exit: {left}",
              file=sys.stderr)


atexit.register(_at_exit)
