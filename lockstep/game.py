"""A running game: rules, state and hash chain advanced together, with exact save and restore."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lockstep.chain import chain_next, chain_start
from lockstep.rules import Rules
from lockstep.sim import step
from lockstep.state import State, initial_state

if TYPE_CHECKING:
    from lockstep.simulation import Simulation


@dataclass(frozen=True)
class Snapshot:
    """Everything needed to continue a game exactly: a state copy and the chain up to it."""

    state: State
    chain: bytes


class Game:
    """Pong as a `Simulation`: the engine, replay verification and the divergence analysis all
    step it through `run`, the one place where a frame is stepped and chained."""

    def __init__(self, rules: Rules, seed: int) -> None:
        self.rules = rules
        self.seed = seed
        self.state = initial_state(rules, seed)
        self.chain = chain_start(rules, seed)

    @property
    def frame(self) -> int:
        return self.state.frame

    @property
    def finished(self) -> bool:
        return bool(self.state.over)

    def advance(self, frame_input: int) -> bytes:
        """Step one frame with both players' packed inputs; returns the new chain value."""
        return self.run((frame_input,))

    def run(self, frame_inputs: Iterable[int], chains: bytearray | None = None) -> bytes:
        """Step through `frame_inputs`, chaining every frame; returns the final chain.

        `chains`, when given, collects the chain of every frame stepped (8 bytes each). Locals
        only inside the loop: this is the hot path of `pong replay verify` and `pong desync`.
        """
        state, rules, chain = self.state, self.rules, self.chain
        _step, _next = step, chain_next
        for frame_input in frame_inputs:
            _step(state, rules, frame_input)
            chain = _next(chain, state)
            if chains is not None:
                chains += chain
        self.chain = chain
        return chain

    def save(self) -> Snapshot:
        return Snapshot(self.state.copy(), self.chain)

    def restore(self, snapshot: Snapshot) -> None:
        self.state = snapshot.state.copy()
        self.chain = snapshot.chain


if TYPE_CHECKING:

    def _game_is_a_simulation(game: Game) -> Simulation:
        return game  # mypy proves Pong satisfies the engine's protocol
