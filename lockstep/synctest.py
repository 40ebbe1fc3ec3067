"""Synctest: every frame, roll back K frames, re-simulate, and demand the same chain.

This proves save/restore is exact and that a step depends on nothing outside the saved state (the
GGPO/GGRS SyncTest idea), for any `Simulation`. The game continues from the re-simulated state, so
a restore that loses anything shows up in later frames too.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from lockstep.simulation import Simulation


@dataclass(frozen=True)
class SynctestResult:
    ok: bool
    frames: int
    final_chain: bytes
    first_bad_frame: int | None


def run_synctest(
    new_game: Callable[[], Simulation], frame_inputs: Sequence[int], check_distance: int
) -> SynctestResult:
    """Play `frame_inputs` on a game from `new_game()`, rolling back `check_distance` frames after
    every frame, against a second one that is never rolled back."""
    if check_distance < 1:
        raise ValueError("check distance must be at least 1")
    game = new_game()
    reference = new_game()  # never rolled back: the uninterrupted history
    start = game.frame
    saved: deque[object] = deque(maxlen=check_distance)
    first_bad: int | None = None
    for k, frame_input in enumerate(frame_inputs):
        saved.append(game.save())
        expected = reference.advance(frame_input)
        game.advance(frame_input)
        # K frames back, or to the start while fewer than K frames exist: every frame is checked.
        game.restore(saved[0])
        for g in range(game.frame - start, k + 1):
            game.advance(frame_inputs[g])
        if first_bad is None and game.chain != expected:
            first_bad = start + k + 1
    return SynctestResult(first_bad is None, len(frame_inputs), game.chain, first_bad)
