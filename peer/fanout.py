"""Confirmed frames to everyone who wants them: the replay recorder and the spectators.

Consumers register with `Fanout.add`; each gets every frame published after it joined, in order,
as a batch. A consumer that can go on no longer raises `ConsumerFailed` (one line for a person): it
is dropped, and when it was essential (the replay: a match nobody can verify is not worth playing)
`failure` says why, for the session to end the match.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from lockstep.engine import FrameAdvanced


class ConsumerFailed(Exception):
    """A consumer cannot take any more frames; `str()` is one line for a person."""


class FrameConsumer(Protocol):
    def take(self, frames: Sequence[FrameAdvanced]) -> None:
        """Every newly confirmed frame, in order. Raises `ConsumerFailed` when it can go on no longer."""
        ...


class Fanout:
    def __init__(self) -> None:
        self._consumers: list[tuple[FrameConsumer, bool]] = []
        self.failure: str | None = None  # why the first essential consumer failed
        self.dropped: list[tuple[FrameConsumer, str]] = []  # every consumer that failed, and why

    def __len__(self) -> int:
        return len(self._consumers)

    def add(self, consumer: FrameConsumer, *, essential: bool = False) -> None:
        self._consumers.append((consumer, essential))

    def remove(self, consumer: FrameConsumer) -> None:
        self._consumers = [(c, e) for c, e in self._consumers if c is not consumer]

    def publish(self, frames: Sequence[FrameAdvanced]) -> None:
        if not frames:
            return
        for consumer, essential in list(self._consumers):
            try:
                consumer.take(frames)
            except ConsumerFailed as exc:
                self.remove(consumer)
                self.dropped.append((consumer, str(exc)))
                if essential and self.failure is None:
                    self.failure = str(exc)
