"""One stop mechanism for long commands: SIGINT/SIGTERM ask for a clean stop, a second one stops now.

Train stops after the current step and saves a checkpoint; refine finishes the files in flight.
Both then raise `Interrupted` with the exit code shells expect (128 + the signal number).
"""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any

from .errors import RefinekitError


class Interrupted(RefinekitError):
    """A run stopped on request; its message says how to resume."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


class StopOnSignals:
    """Context manager: records the first SIGINT/SIGTERM; a second raises KeyboardInterrupt.

    Handlers are installed only in the main thread (Python allows no other), so the library
    can also run in a worker thread, where it simply never sees a stop request.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.signum: int | None = None
        self._old: dict[int, Any] = {}

    def requested(self) -> bool:
        return self.signum is not None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:  # a second signal: stop now
            raise KeyboardInterrupt
        self.signum = signum

    def __enter__(self) -> StopOnSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)
        self._old.clear()

    def interrupted(self, what: str) -> Interrupted:
        """The exception to raise after stopping: `what` says what was kept and how to resume."""
        if self.signum is None:
            raise RuntimeError("no stop was requested")
        name = signal.Signals(self.signum).name
        return Interrupted(f"{name}: {what}", 128 + self.signum)
