"""Keep orbax's noise off the user's terminal: its INFO logs, the tracebacks of its abandoned
write coroutines, and what tensorstore's threads print to fd 2 while a failed save unwinds.
A failure reaches the user as one CheckpointError from checkpoint.py instead."""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import sys
import traceback


class _AbandonedOrbaxWrites(logging.Filter):
    """Drop asyncio's "... exception was never retrieved" for orbax's write coroutines.

    After a failed save (full disk) orbax abandons its per-array write tasks and the futures
    gathering them (a Task or a _GatheringFuture, depending on where the write failed);
    asyncio logs each one with a traceback whenever the garbage collector gets to it, possibly at interpreter
    exit, long after we reported the failure as one CheckpointError. refinekit runs no asyncio
    code of its own, so nothing else is hidden.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if not message.split("\n", 1)[0].endswith("exception was never retrieved"):
            return True
        return not ("orbax" in message or _raised_in_orbax(record.exc_info))


def _raised_in_orbax(exc_info) -> bool:
    """Whether the logged exception's traceback passes through orbax's code."""
    tb = exc_info[2] if exc_info and len(exc_info) == 3 else None
    return any("orbax" in frame.filename for frame in traceback.extract_tb(tb)) if tb else False


def _quiet_orbax_unraisable(previous):
    """A sys.unraisablehook that drops the reports of orbax's abandoned coroutines (a failed
    restore's reads, collected later) and passes everything else on."""

    def hook(unraisable) -> None:
        target = getattr(unraisable, "object", None)
        code = getattr(target, "cr_code", None)
        if code is not None and "orbax" in (code.co_filename or ""):
            return
        previous(unraisable)

    return hook


_quieted = False


def quiet_orbax_once() -> None:
    """Keep the user's terminal for our own messages once orbax is in use (not at import:
    `import refinekit` must not change the host program's logging).

    orbax logs every save at INFO through absl; its abandoned coroutines are dropped from
    asyncio's log and from sys.unraisablehook (everything else passes through)."""
    global _quieted
    if _quieted:
        return
    _quieted = True
    logging.getLogger("absl").setLevel(logging.ERROR)
    logging.getLogger("asyncio").addFilter(_AbandonedOrbaxWrites())
    sys.unraisablehook = _quiet_orbax_unraisable(sys.unraisablehook)


@contextlib.contextmanager
def orbax_quiet():
    """While orbax works, its failures reach the user as one CheckpointError, not as the
    tracebacks it logs through absl."""
    logger = logging.getLogger("absl")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    except Exception:
        gc.collect()  # finish orbax's abandoned coroutines now, not noisily at interpreter exit
        raise
    finally:
        logger.setLevel(level)


@contextlib.contextmanager
def stderr_held():
    """Hold what native threads print to file descriptor 2 during an orbax call.

    When a save fails (full disk), tensorstore's threads print "Event loop is closed"
    tracebacks straight to fd 2 while orbax unwinds; the user gets our one-line error instead.
    What was printed is replayed when the call succeeds.
    """
    import sys
    import tempfile

    sys.stderr.flush()
    saved = os.dup(2)
    failed = False
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        except BaseException:
            failed = True
            raise
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            if not failed:
                sink.seek(0)
                held = sink.read()
                if held:
                    os.write(2, held)
