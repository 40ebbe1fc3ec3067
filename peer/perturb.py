"""The game a match plays, and the `--debug-desync-at` hook: a game that departs on purpose.

The hook lives here, outside the engine: the session hands the engine a `PerturbedGame`, which
nudges the very state the chain certifies, so detection, reports and `pong desync` can be tested.
"""

from __future__ import annotations

from collections.abc import Callable

from lockstep.chain import chain_next
from lockstep.game import Game
from lockstep.rules import Rules
from lockstep.simulation import Simulation
from peer.protocol import Established

GameFactory = Callable[[Established], Simulation]


class PerturbedGame(Game):
    """Pong, except that right after frame `at_frame` is stepped its ball is one unit off
    (`ball_y`, towards the field), and that frame's chain certifies the nudged state."""

    def __init__(self, rules: Rules, seed: int, at_frame: int) -> None:
        super().__init__(rules, seed)
        self.at_frame = at_frame

    def advance(self, frame_input: int) -> bytes:
        prev_chain = self.chain
        chain = super().advance(frame_input)
        if self.state.frame == self.at_frame:
            state = self.state
            state.ball_y = state.ball_y + 1 if state.ball_y == 0 else state.ball_y - 1
            chain = self.chain = chain_next(prev_chain, state)
        return chain


def pong_game(debug_desync_at: int | None = None) -> GameFactory:
    """The game factory of a Pong match: the handshake's rules and seed, perturbed after frame
    `debug_desync_at` when it is given."""

    def make(established: Established) -> Simulation:
        if debug_desync_at is None:
            return Game(established.rules, established.seed)
        return PerturbedGame(established.rules, established.seed, debug_desync_at)

    return make
