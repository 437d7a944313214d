"""A small thread pipeline for feeding a device: bounded task window, ordered prefetch, one job
in flight, and file threads that yield to compute. Generic: no JAX, no file formats.

    with file_pool(workers, "read") as readers, file_pool(workers, "write") as writers:
        window = Window(writers, limit=8, done=collect)   # at most 8 write tasks queued
        device = OneInFlight(finish=lambda job: window.submit(write, job.wait()))
        for batch in prefetch(readers, decode, chunks(files, 16), ahead=4):  # decoded in order
            device.push(start_on_device(batch))           # start k+1, then finish k
        device.flush()
        window.drain()

Tasks are chunks, not single items: on a small machine the thread hand-offs per file cost more
CPU than decoding a small image, and that CPU is taken from the device's (CPU) computation.
"""

from __future__ import annotations

import os
import sys
import threading
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ThreadPoolExecutor, wait
from typing import Any, Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Window(Generic[R]):
    """At most `limit` tasks in flight on `pool`. Each task returns an iterable of results;
    when it finishes, its results go to `done`, one by one, in the thread that calls
    `submit`, `poll` or `drain` (so `done` needs no lock). A task's exception is raised there."""

    def __init__(self, pool: Executor, limit: int, done: Callable[[R], None]):
        self.pool, self.limit, self.done = pool, max(1, limit), done
        self.pending: set[Future] = set()

    def submit(self, fn: Callable[..., Iterable[R]], *args: Any) -> None:
        """Queue fn(*args), first waiting (and collecting) while `limit` tasks are in flight."""
        while len(self.pending) >= self.limit:
            self._wait()
        self.pending.add(self.pool.submit(fn, *args))

    def poll(self) -> None:
        """Collect the tasks already finished, without waiting."""
        self._collect([f for f in self.pending if f.done()])

    def drain(self) -> None:
        """Wait for every task in flight and collect it."""
        while self.pending:
            self._wait()

    def cancel(self) -> None:
        """Cancel the tasks not started yet (running ones finish; their results are dropped)."""
        for future in self.pending:
            future.cancel()

    def _wait(self) -> None:
        finished, _ = wait(self.pending, return_when=FIRST_COMPLETED)
        self._collect(finished)

    def _collect(self, finished: Iterable[Future]) -> None:
        for future in finished:
            self.pending.discard(future)
            for result in future.result():
                self.done(result)


def prefetch(
    pool: Executor, fn: Callable[[T], R], items: Iterable[T], ahead: int
) -> Generator[R, None, None]:
    """fn(item) for each item, in order, computed up to `ahead` items in advance on `pool`.

    Closing the generator (or leaving a `with closing(...)` block) cancels the calls queued
    ahead; an exception in fn(item) is raised when that item's turn comes.
    """
    it = iter(items)
    queue: deque[Future] = deque(pool.submit(fn, x) for _, x in zip(range(ahead), it, strict=False))
    try:
        while queue:
            future = queue.popleft()
            for x in it:
                queue.append(pool.submit(fn, x))
                break
            yield future.result()
    finally:
        for future in queue:
            future.cancel()


class OneInFlight(Generic[T]):
    """Keeps one device job in flight: `push(started)` hands over a job already started, then
    finishes (`finish(job)`, which waits for it) the job pushed before it. So the device has
    job k+1 while this thread waits for job k and hands its results on: it never idles between
    jobs. `flush` finishes the last one."""

    def __init__(self, finish: Callable[[T], None]):
        self.finish = finish
        self.pending: T | None = None

    def push(self, started: T | None) -> None:
        """`started`: the job just started (None: nothing started, e.g. it failed to start)."""
        self.flush()
        self.pending = started

    def flush(self) -> None:
        pending, self.pending = self.pending, None
        if pending is not None:
            self.finish(pending)


class InlineExecutor(Executor):
    """An executor that runs each task at once in the caller's thread (`workers=0`)."""

    def submit(self, fn, /, *args, **kwargs) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - delivered by future.result(), as a pool does
            future.set_exception(exc)
        return future


def file_pool(workers: int, name: str) -> Executor:
    """`workers` threads for file work at a lower priority (`yield_to_compute`); 0: inline."""
    if workers == 0:
        return InlineExecutor()
    return ThreadPoolExecutor(workers, name, initializer=yield_to_compute)


def default_workers() -> int:
    """File threads per pool: half the CPUs (1 to 16).

    Decoding and encoding compete with a CPU refiner for the same cores, and every extra
    thread adds hand-offs: on 2 cores, one reader and one writer ran end to end at 83-94% of
    the model-only speed, two of each at 75-92% (docs/performance.md). With an accelerator
    doing the refining, half the CPUs are still plenty for the file work.
    """
    return max(1, min(16, (os.cpu_count() or 2) // 2))


def yield_to_compute() -> None:
    """Run this file-work thread at a lower scheduling priority than the compute threads.

    XLA:CPU splits each convolution over all cores and waits for the slowest part; a decode
    or encode thread that takes a core mid-op stalls all of them. At a lower priority the file
    work fills the gaps between ops instead. Linux schedules threads separately, so this
    touches only the calling thread; elsewhere (or when refused) it does nothing. The
    REFINEKIT_IO_NICE environment variable sets the niceness added (default 10; 0: none).
    """
    nicer = int(os.environ.get("REFINEKIT_IO_NICE", "10"))  # added to the thread's niceness
    if nicer > 0 and sys.platform.startswith("linux"):
        try:
            tid = threading.get_native_id()
            os.setpriority(
                os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + nicer)
            )
        except OSError:
            pass


def chunks(items: list[T], size: int) -> Iterator[list[T]]:
    """`items` in consecutive lists of `size` (the last may be shorter)."""
    for start in range(0, len(items), size):
        yield items[start : start + size]
