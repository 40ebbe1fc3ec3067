"""Recording matches without a network: bot matches and scripted inputs, for tests, benches and goldens.

The writer is fed exactly as a live session feeds it: each frame's packed inputs and the chain
after the frame.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

from lockstep.bots import make_bot
from lockstep.game import Game
from lockstep.inputs import pack
from lockstep.rules import Rules
from replay.writer import ReplayWriter


@dataclass(frozen=True)
class Recorded:
    frames: int
    final_chain: bytes
    score: tuple[int, int]
    over: bool
    end_reason: str | None


def record_inputs(
    path: str | os.PathLike[str],
    rules: Rules,
    seed: int,
    frame_inputs: Iterable[int],
    *,
    input_delay: int = 0,
    names: tuple[str, str] = ("left", "right"),
    created_unix: int = 0,
    end_reason: str | None = "quit",
    chunk_frames: int = 60,
) -> Recorded:
    """Play `frame_inputs` and record them; `end_reason=None` leaves the file without a footer."""
    game = Game(rules, seed)
    with ReplayWriter(
        os.fspath(path), rules, seed, input_delay, names, created_unix, chunk_frames=chunk_frames
    ) as writer:
        advance = game.advance
        add = writer.add_frame
        for frame_input in frame_inputs:
            add(frame_input, advance(frame_input))
        if end_reason is not None:
            writer.finish(end_reason)
    return Recorded(game.frame, game.chain, game.state.score(), bool(game.state.over), end_reason)


def record_bot_match(
    path: str | os.PathLike[str],
    rules: Rules,
    seed: int,
    bots: tuple[str, str] = ("tracker", "random"),
    *,
    max_frames: int = 36_000,
    bot_seed: int | None = None,
    input_delay: int = 0,
    created_unix: int = 0,
    end_reason: str | None = None,
    chunk_frames: int = 60,
) -> Recorded:
    """Two bots play until the match ends or `max_frames`; the end reason defaults to
    `finished` (the match ended) or `quit` (stopped at `max_frames`)."""
    game = Game(rules, seed)
    seed_of_bots = seed if bot_seed is None else bot_seed
    left = make_bot(bots[0], rules, 0, seed_of_bots)
    right = make_bot(bots[1], rules, 1, seed_of_bots)
    with ReplayWriter(
        os.fspath(path), rules, seed, input_delay, bots, created_unix, chunk_frames=chunk_frames
    ) as writer:
        while game.frame < max_frames and not game.state.over:
            frame_input = pack(left.decide(game.state), right.decide(game.state))
            writer.add_frame(frame_input, game.advance(frame_input))
        reason = end_reason or ("finished" if game.state.over else "quit")
        writer.finish(reason)
    return Recorded(game.frame, game.chain, game.state.score(), bool(game.state.over), reason)
