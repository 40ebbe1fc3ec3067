"""Synctest: every frame, roll back K frames, re-simulate, and demand the same chain.

This proves save/restore is exact and that a step depends on nothing outside the state (the
GGPO/GGRS SyncTest idea). The game continues from the re-simulated state, so a restore that
loses anything shows up in later frames too.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from lockstep.game import Game, Snapshot
from lockstep.rules import Rules


@dataclass(frozen=True)
class SynctestResult:
    ok: bool
    frames: int
    final_chain: bytes
    first_bad_frame: int | None


def run_synctest(rules: Rules, seed: int, frame_inputs: list[int], check_distance: int) -> SynctestResult:
    if check_distance < 1:
        raise ValueError("check distance must be at least 1")
    game = Game(rules, seed)
    reference = Game(rules, seed)  # never rolled back: the uninterrupted history
    saved: deque[Snapshot] = deque(maxlen=check_distance)
    first_bad: int | None = None
    for f, frame_input in enumerate(frame_inputs):
        saved.append(game.save())
        expected = reference.advance(frame_input)
        game.advance(frame_input)
        # K frames back, or to the start while fewer than K frames exist: every frame is checked.
        back = saved[0]
        game.restore(back)
        for g in range(back.state.frame, f + 1):
            game.advance(frame_inputs[g])
        if first_bad is None and (game.chain != expected or game.state != reference.state):
            first_bad = f + 1
    return SynctestResult(first_bad is None, len(frame_inputs), game.chain, first_bad)
