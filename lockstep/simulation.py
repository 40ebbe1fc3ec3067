"""What the engine needs of a game: the `Simulation` protocol.

Any deterministic game can be driven by `lockstep.engine.Engine` and checked by
`lockstep.synctest`: Pong (`lockstep.game.Game`) is one, the tests hold another.
"""

from __future__ import annotations

from typing import Any, Protocol


class Simulation(Protocol):
    """A deterministic game advanced one frame at a time, certified by a hash chain.

    `frame` counts the frames simulated; `chain` certifies every state up to it (equal chains mean
    equal histories); `advance` steps one frame with the packed input of both players and returns
    the new chain. `save` returns a snapshot that later changes to the game do not touch, and
    `restore` puts the game back exactly as it was when the snapshot was taken (chain included).
    """

    @property
    def frame(self) -> int: ...

    @property
    def chain(self) -> bytes: ...

    @property
    def finished(self) -> bool: ...

    def advance(self, frame_input: int) -> bytes: ...

    def save(self) -> object: ...

    # `Any`: each game takes back exactly the snapshots its own `save` made.
    def restore(self, snapshot: Any) -> None: ...
