"""How `pong` commands are stopped: Ctrl-C, SIGTERM and SIGHUP, and the moment after which nothing
may stop them any more (the work is done and reported: a late signal must not change the exit code
or print a traceback, even during the interpreter's shutdown)."""

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

# While held: the handlers to put back on release. Ignoring (rather than blocking, which only the
# calling thread would do) holds whatever thread the kernel picks, pygame's included.
_held: dict[int, Any] | None = None


def interrupt(signum: int, frame: FrameType | None) -> None:
    """SIGTERM and SIGHUP handled like Ctrl-C: through the command's clean-up."""
    raise KeyboardInterrupt


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()  # only it may handle signals


def install(handler: Handler, signals: tuple[signal.Signals, ...] = STOP_SIGNALS) -> dict[int, Any]:
    """Put `handler` on each of `signals` that is not ignored already (`nohup` ignores SIGHUP, a
    background job SIGINT: that choice stays); returns what `restore` puts back.

    Swapping a handler runs any Python handler still pending, which may raise KeyboardInterrupt
    half-way: what was swapped by then is put back before it goes on."""
    previous: dict[int, Any] = {}
    if not _main_thread():
        return previous
    try:
        for sig in signals:
            if signal.getsignal(sig) is not signal.SIG_IGN:
                previous[sig] = signal.getsignal(sig)
                signal.signal(sig, handler)
    except BaseException:
        restore(previous)
        raise
    return previous


def restore(previous: dict[int, Any]) -> None:
    """Put back what `install` replaced (while held: once released)."""
    if not _main_thread():
        return
    for sig, handler in previous.items():
        handler = handler if handler is not None else signal.SIG_DFL
        if _held is not None:
            _held[sig] = handler
        else:
            signal.signal(sig, handler)


def held() -> bool:
    return _held is not None


def hold() -> None:
    """From here on stop signals are ignored, until `release`. Each previous handler is recorded
    before it is swapped, so an interruption half-way leaves a hold that `release` undoes."""
    global _held
    if not _main_thread():
        return
    if _held is None:
        _held = {}
    for sig in STOP_SIGNALS:  # again after an interruption: it completes the hold
        if sig not in _held:
            _held[sig] = signal.getsignal(sig)
        signal.signal(sig, signal.SIG_IGN)


def release() -> None:
    global _held
    if _held is None or not _main_thread():
        return
    held_handlers, _held = _held, None
    restore(held_handlers)
