"""refine.pipeline on its own: ordering, back-pressure, cancellation, a worker's exception and
the one-job-in-flight hand-off, with plain Python tasks (no images, no JAX)."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing

import pytest

from refinekit.refine.pipeline import (
    InlineExecutor,
    OneInFlight,
    Window,
    chunks,
    default_workers,
    file_pool,
    prefetch,
)


class CountingPool(ThreadPoolExecutor):
    """A thread pool that counts the tasks submitted to it."""

    def __init__(self, workers):
        super().__init__(workers)
        self.submitted = 0

    def submit(self, fn, /, *args, **kwargs):
        self.submitted += 1
        return super().submit(fn, *args, **kwargs)


def test_prefetch_yields_in_order_when_tasks_finish_out_of_order():
    def slow_first(x):
        time.sleep(0.002 * (10 - x))  # later items finish sooner
        return x * x

    with ThreadPoolExecutor(4) as pool:
        assert list(prefetch(pool, slow_first, range(10), ahead=4)) == [x * x for x in range(10)]


@pytest.mark.parametrize("ahead", [1, 3])
def test_prefetch_runs_at_most_ahead_items_in_advance(ahead):
    with CountingPool(4) as pool:
        seen = []
        for consumed, value in enumerate(prefetch(pool, lambda x: x, range(12), ahead), start=1):
            seen.append(value)
            # the item being consumed, and at most `ahead` queued behind it
            assert pool.submitted <= consumed + ahead
            time.sleep(0.001)  # give the pool time: it still may not run further ahead
        assert seen == list(range(12)) and pool.submitted == 12


def test_closing_prefetch_cancels_the_items_queued_ahead():
    gate, blocking, ran = threading.Event(), threading.Event(), []

    def task(x):
        ran.append(x)
        if x >= 1:
            blocking.set()
            gate.wait(5)
        return x

    pool = ThreadPoolExecutor(1)  # item 1 blocks the only thread; 2.. wait in the queue
    parts = prefetch(pool, task, range(10), ahead=3)
    with closing(parts):
        assert next(parts) == 0
        assert blocking.wait(5)  # item 1 holds the thread
    gate.set()
    pool.shutdown(wait=True)
    assert ran == [0, 1]  # 2 and 3 were cancelled; 4.. were never submitted


def test_a_task_exception_reaches_the_consumer_in_its_turn_and_cancels_the_rest():
    ran = []

    def task(x):
        ran.append(x)
        if x == 2:
            raise ValueError("bad item 2")
        return x

    got = []
    with InlineExecutor() as pool:  # runs each task at submit: the exception waits in its future
        with pytest.raises(ValueError, match="bad item 2"):
            for value in prefetch(pool, task, range(10), ahead=2):
                got.append(value)
    assert got == [0, 1] and ran == [0, 1, 2, 3, 4]  # never more than 2 ahead of the consumer


def test_window_keeps_at_most_limit_tasks_in_flight_and_collects_every_result():
    done, running, peak, lock = [], [0], [0], threading.Lock()

    def task(x):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.003)
        with lock:
            running[0] -= 1
        return [x, -x]  # a task returns several results

    with ThreadPoolExecutor(8) as pool:
        window = Window(pool, 3, done.append)
        for x in range(1, 13):
            window.submit(task, x)
            assert len(window.pending) <= 3
        window.drain()
    assert peak[0] <= 3 and not window.pending
    assert sorted(done) == sorted([x for x in range(1, 13)] + [-x for x in range(1, 13)])


def test_window_submit_waits_while_the_window_is_full():
    gate = threading.Event()
    with ThreadPoolExecutor(4) as pool:
        window = Window(pool, 2, lambda r: None)
        window.submit(lambda: (gate.wait(5), [])[1])
        window.submit(lambda: (gate.wait(5), [])[1])
        third = threading.Thread(target=window.submit, args=(lambda: [],))
        third.start()
        third.join(0.2)
        assert third.is_alive()  # blocked: two tasks in flight
        gate.set()
        third.join(5)
        assert not third.is_alive()
        window.drain()


def test_window_results_go_to_done_in_the_collecting_thread_and_poll_never_waits():
    threads = []
    gate = threading.Event()
    with ThreadPoolExecutor(2) as pool:
        window = Window(pool, 4, lambda r: threads.append(threading.current_thread()))
        window.submit(lambda: [1])
        window.submit(lambda: (gate.wait(5), [2])[1])
        while not any(f.done() for f in window.pending):
            time.sleep(0.001)
        window.poll()  # collects the finished task, does not wait for the blocked one
        assert threads == [threading.current_thread()] and len(window.pending) == 1
        gate.set()
        window.drain()
    assert threads == [threading.current_thread()] * 2


def test_window_cancel_drops_tasks_not_started():
    gate, started, ran, done = threading.Event(), threading.Event(), [], []
    pool = ThreadPoolExecutor(1)

    def task(x):
        ran.append(x)
        started.set()
        gate.wait(5)
        return [x]

    window = Window(pool, 5, done.append)
    for x in range(4):
        window.submit(task, x)
    assert started.wait(5)  # task 0 holds the only thread; 1-3 wait in the queue
    window.cancel()
    gate.set()
    pool.shutdown(wait=True)
    assert ran == [0] and done == []


def test_a_failing_window_task_raises_where_it_is_collected():
    with ThreadPoolExecutor(2) as pool:
        window = Window(pool, 2, lambda r: None)
        window.submit(lambda: [1])

        def broken():
            raise OSError("disk full")

        window.submit(broken)
        with pytest.raises(OSError, match="disk full"):
            window.drain()


def test_one_in_flight_starts_the_next_job_before_finishing_the_last():
    log = []
    device = OneInFlight(lambda job: log.append(f"finish {job}"))

    def start(job):
        log.append(f"start {job}")
        return job

    device.push(start("a"))
    assert log == ["start a"]  # nothing finished yet: a runs while b is prepared
    device.push(start("b"))
    assert log == ["start a", "start b", "finish a"]
    device.push(None)  # b's successor failed to start: b is finished, nothing stays in flight
    assert log[-1] == "finish b" and device.pending is None
    device.push(start("c"))
    device.flush()
    device.flush()  # a second flush has nothing left to finish
    assert log[-2:] == ["start c", "finish c"] and log.count("finish c") == 1


def test_workers_0_is_the_calling_thread_and_others_are_a_named_pool():
    inline = file_pool(0, "read")
    assert isinstance(inline, InlineExecutor)
    assert inline.submit(threading.current_thread).result() is threading.current_thread()
    with file_pool(2, "refine-read") as pool:
        assert (
            pool.submit(lambda: threading.current_thread().name).result().startswith("refine-read")
        )
    assert 1 <= default_workers() <= 16


def test_chunks_cover_the_items_in_order():
    assert list(chunks(list(range(7)), 3)) == [[0, 1, 2], [3, 4, 5], [6]]
    assert list(chunks([], 3)) == []
