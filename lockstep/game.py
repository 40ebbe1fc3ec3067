"""A running game: rules, state and hash chain advanced together, with exact save and restore."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from lockstep.chain import chain_next, chain_start
from lockstep.rules import Rules
from lockstep.sim import step
from lockstep.state import State, initial_state


@dataclass(frozen=True)
class Snapshot:
    """Everything needed to continue a game exactly: a state copy and the chain up to it."""

    state: State
    chain: bytes


class Game:
    def __init__(self, rules: Rules, seed: int) -> None:
        self.rules = rules
        self.seed = seed
        self.state = initial_state(rules, seed)
        self.chain = chain_start(rules, seed)

    @property
    def frame(self) -> int:
        return self.state.frame

    def advance(self, frame_input: int) -> bytes:
        """Step one frame with both players' packed inputs; returns the new chain value."""
        step(self.state, self.rules, frame_input)
        self.chain = chain_next(self.chain, self.state)
        return self.chain

    def run(self, frame_inputs: Iterable[int]) -> bytes:
        for frame_input in frame_inputs:
            self.advance(frame_input)
        return self.chain

    def save(self) -> Snapshot:
        return Snapshot(self.state.copy(), self.chain)

    def restore(self, snapshot: Snapshot) -> None:
        self.state = snapshot.state.copy()
        self.chain = snapshot.chain
