"""How `pong` commands are stopped: Ctrl-C, SIGTERM and SIGHUP, and the moment after which nothing
may stop them any more (the work is done and reported: a late signal must not change the exit code
or print a traceback)."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

Handler = Callable[[int, FrameType | None], Any]

# SIGINT is Ctrl-C, SIGTERM is `kill` and `timeout`, SIGHUP a closed terminal.
STOP_SIGNALS: tuple[signal.Signals, ...] = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)
TERMINATION_SIGNALS = tuple(sig for sig in STOP_SIGNALS if sig != signal.SIGINT)


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()  # only it may handle signals


def install(handler: Handler, signals: tuple[signal.Signals, ...] = STOP_SIGNALS) -> dict[int, Any]:
    """Put `handler` on each of `signals` that is not ignored already (`nohup` ignores SIGHUP, a
    background job SIGINT: that choice stays); returns what `restore` puts back."""
    if not _main_thread():
        return {}
    return {
        sig: signal.signal(sig, handler) for sig in signals if signal.getsignal(sig) is not signal.SIG_IGN
    }


def restore(previous: dict[int, Any]) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


def hold() -> None:
    """From here on no stop signal is delivered (they wait, blocked) until `release`."""
    if hasattr(signal, "pthread_sigmask") and _main_thread():
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)


def release() -> None:
    if hasattr(signal, "pthread_sigmask") and _main_thread():
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


def ignore_all() -> None:
    """For the last steps of the process: signals held until now are dropped, none come after."""
    if _main_thread():
        for sig in STOP_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)
