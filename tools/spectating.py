"""Spectator processes for a `procmatch.run_match`: `pong watch` children started where the host
listens, before the joiner, and checked when the match is over (used by `pong bench`)."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

from tools import exitcodes
from tools.exitcodes import CommandError
from tools.procmatch import GRACE_S, _spawn, _stop_all, _StopRequest


def spectating(count: int, directory: str) -> Callable[[int], AbstractContextManager[int]]:
    """A `via` for `run_match`: `count` headless spectators watch the host's match from its start
    (each records into `directory`); each must follow it to the end, or `CommandError`."""

    @contextlib.contextmanager
    def via(port: int) -> Iterator[int]:
        children = [
            _spawn(
                [
                    "watch",
                    f"127.0.0.1:{port}",
                    "--headless",
                    "--json",
                    "--record",
                    os.path.join(directory, f"spectator-{i}.replay"),
                ]
            )
            for i in range(count)
        ]
        try:
            yield port
            stop = _StopRequest()
            runs = [child.finish(time.monotonic() + GRACE_S, stop) for child in children]
        finally:
            _stop_all(children)
        for i, run in enumerate(runs):
            if run.code != 0 or run.result is None:
                said = (run.stderr.splitlines() or ["no output"])[-1]
                raise CommandError(f"spectator {i} exited with {run.code}: {said}", exitcodes.CHECK_FAILED)

    return via
