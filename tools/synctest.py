"""`pong synctest`: prove that save/restore and re-simulation are exact on this machine."""

from __future__ import annotations

import argparse

from lockstep.game import Game
from lockstep.rules import Rules
from lockstep.script import random_inputs
from lockstep.synctest import run_synctest
from tools import args as types
from tools import exitcodes
from tools.exitcodes import CommandError
from tools.output import report

# Ten seconds of play: far beyond any rollback window, and each frame costs K steps.
MAX_CHECK_DISTANCE = 600
# frames x K steps at ~900,000 a second: a few minutes at most, never an apparent hang.
MAX_STEPS = 200_000_000


def check_distance(text: str) -> int:
    return types.int_in(text, 1, MAX_CHECK_DISTANCE, "check distance")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--frames",
        type=types.synctest_frames,
        default=20000,
        help=f"frames to play (default 20000, at most {types.SYNCTEST_MAX_FRAMES:,})",
    )
    parser.add_argument(
        "--check-distance",
        type=check_distance,
        default=8,
        metavar="K",
        help=f"roll back K frames every frame and re-simulate (default 8, at most {MAX_CHECK_DISTANCE})",
    )
    parser.add_argument(
        "--seed", type=types.seed, default=1, help="seed of the game and its inputs (default 1)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")


def run(args: argparse.Namespace) -> int:
    steps = args.frames * args.check_distance
    if steps > MAX_STEPS:
        raise CommandError(
            f"--frames x --check-distance is {steps:,} re-simulated steps; at most {MAX_STEPS:,} "
            "(a few minutes)"
        )
    # A match that never ends by points, so every frame exercises the moving game.
    rules = Rules(points_to_win=999)
    seed = args.seed
    result = run_synctest(lambda: Game(rules, seed), random_inputs(seed, args.frames), args.check_distance)
    if result.ok:
        summary = (
            f"synctest ok: {result.frames} frames, rolled back {args.check_distance} frames every frame "
            "(to the start while fewer), "
            f"final chain {result.final_chain.hex()}"
        )
    else:
        summary = f"synctest FAILED: re-simulation diverged first at frame {result.first_bad_frame}"
    report(
        summary,
        {
            "ok": result.ok,
            "frames": result.frames,
            "check_distance": args.check_distance,
            "seed": args.seed,
            "final_chain": result.final_chain.hex(),
            "first_bad_frame": result.first_bad_frame,
        },
        args.json,
    )
    return exitcodes.OK if result.ok else exitcodes.CHECK_FAILED
