"""`pong replay play|verify|info FILE`: watch, check and describe a replay.

`verify` and `info` are headless and never import pygame; `play` imports it only once the file has
been read and a display is known to exist.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import sys
from typing import Any

from lockstep.rules import Rules, rules_digest
from lockstep.state import winner
from replay.format import ReplayError
from replay.reader import Replay, read_replay
from tools import exitcodes
from tools.exitcodes import CommandError
from tools.output import report, say


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="replay_action", metavar="ACTION")
    actions.required = True

    play = actions.add_parser(
        "play",
        help="watch a replay in a window",
        description=(
            "Watch a replay. Space play/pause, Left/Right step a frame (Shift: a second), Up/Down speed "
            "x1/4..x8, PgUp/PgDn ten seconds, Home/End, 0-9 seek to 0%..90%, click the timeline to "
            "seek, Esc/Q quit."
        ),
    )
    play.add_argument("file", metavar="FILE", help="the replay file")
    # For tests and scripted demos: quit after drawing this many frames.
    play.add_argument("--max-ticks", type=int, default=None, help=argparse.SUPPRESS)
    play.set_defaults(replay_run=_play)

    verify = actions.add_parser(
        "verify",
        help="re-simulate a replay and check every checkpoint",
        description=(
            "Re-simulate a replay and compare the hash chain at every checkpoint. Exit 0 when it "
            "verifies (a truncated recording: its intact prefix), 1 on a mismatch, 2 when unreadable."
        ),
    )
    verify.add_argument("file", metavar="FILE", help="the replay file")
    verify.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    verify.set_defaults(replay_run=_verify)

    info = actions.add_parser(
        "info",
        help="describe a replay: players, rules, length, score, end reason",
        description="Describe a replay: header fields, frames, duration, final score, end reason.",
    )
    info.add_argument("file", metavar="FILE", help="the replay file")
    info.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    info.set_defaults(replay_run=_info)


def run(args: argparse.Namespace) -> int:
    code: int = args.replay_run(args)
    return code


def _read(path: str) -> Replay:
    try:
        replay = read_replay(path)
    except ReplayError as exc:
        raise CommandError(str(exc), exitcodes.USAGE) from None
    for warning in replay.warnings:
        say(f"pong: warning: {warning}", sys.stderr)
    return replay


def _verify(args: argparse.Namespace) -> int:
    from replay.verify import verify_replay

    replay = _read(args.file)
    result = verify_replay(replay)
    cut = " (truncated: only the intact prefix was checked)" if result.truncated else ""
    if result.ok:
        summary = (
            f"replay ok: {result.frames} frames, {result.checkpoints} checkpoints match, "
            f"final chain {result.final_chain.hex()}{cut}"
        )
    else:
        summary = (
            f"replay MISMATCH: the chain differs at the checkpoint of frame {result.first_bad_frame} "
            f"(last good checkpoint: frame {result.last_good_frame}); these inputs do not reproduce the "
            f"recorded game{cut}"
        )
    report(
        summary,
        {
            "ok": result.ok,
            "frames": result.frames,
            "checkpoints": result.checkpoints,
            "first_bad_frame": result.first_bad_frame,
            "last_good_frame": result.last_good_frame,
            "final_chain": result.final_chain.hex(),
            "truncated": result.truncated,
            "end_reason": replay.end_reason,
            "warnings": replay.warnings,
        },
        args.json,
    )
    return exitcodes.OK if result.ok else exitcodes.CHECK_FAILED


def _created(created_unix: int) -> str:
    try:
        stamp = datetime.datetime.fromtimestamp(created_unix, tz=datetime.timezone.utc)
    except (OverflowError, OSError, ValueError):
        return f"unix time {created_unix}"
    return stamp.strftime("%Y-%m-%d %H:%M:%S UTC")


def _rules_changes(rules: Rules) -> str:
    default = Rules()
    changed = [
        f"{f.name}={getattr(rules, f.name)}"
        for f in dataclasses.fields(rules)
        if getattr(rules, f.name) != getattr(default, f.name)
    ]
    return ", ".join(changed) if changed else "defaults"


def _info(args: argparse.Namespace) -> int:
    from replay.verify import final_state
    from replay.viewer import format_time

    replay = _read(args.file)
    state = final_state(replay)
    won = winner(state)
    winner_name = None if won is None else ("left", "right")[won]
    per_frame = replay.size_bytes / replay.frames if replay.frames else None
    left, right = replay.names
    ending = replay.end_reason or "none recorded (truncated)"
    result = "match not over" if not state.over else "a draw" if won is None else f"{winner_name} wins"
    lines = [
        f"replay {replay.path}",
        f"  format {replay.format_version}, SIM_VERSION {replay.sim_version}, "
        f"rules {rules_digest(replay.rules)} ({_rules_changes(replay.rules)})",
        f"  players {left!r} (left) vs {right!r} (right), seed {replay.seed}, input delay "
        f"{replay.input_delay} frame{'' if replay.input_delay == 1 else 's'}",
        f"  created {_created(replay.created_unix)}",
        f"  {replay.frames} frames ({format_time(replay.frames)}), {len(replay.checkpoints)} chunks, "
        f"{replay.size_bytes} bytes" + (f" ({per_frame:.3f} bytes/frame)" if per_frame else ""),
        f"  final score {state.score_l} : {state.score_r} ({result}), ended: {ending}",
        f"  truncated: {'yes' if replay.truncated else 'no'}",
    ]
    fields: dict[str, Any] = {
        "path": replay.path,
        "format_version": replay.format_version,
        "sim_version": replay.sim_version,
        "rules_id": rules_digest(replay.rules),
        "rules": dataclasses.asdict(replay.rules),
        "seed": replay.seed,
        "input_delay": replay.input_delay,
        "names": list(replay.names),
        "created_unix": replay.created_unix,
        "created": _created(replay.created_unix),
        "frames": replay.frames,
        "duration_s": round(replay.duration_s, 3),
        "score": [state.score_l, state.score_r],
        "over": bool(state.over),
        "winner": winner_name,
        "end_reason": replay.end_reason,
        "truncated": replay.truncated,
        "chunks": len(replay.checkpoints),
        "recorded_final_chain": (replay.recorded_final_chain or b"").hex() or None,
        "size_bytes": replay.size_bytes,
        "bytes_per_frame": round(per_frame, 4) if per_frame else None,
        "warnings": replay.warnings,
    }
    report("\n".join(lines), fields, args.json)
    return exitcodes.OK


def _play(args: argparse.Namespace) -> int:
    from replay.viewer import NoDisplayError, run_viewer

    replay = _read(args.file)
    try:
        run_viewer(replay, max_ticks=args.max_ticks)
    except NoDisplayError as exc:
        raise CommandError(
            f"cannot show the replay: {exc}; without a display, use `pong replay info {args.file}` "
            f"or `pong replay verify {args.file}`",
            exitcodes.USAGE,
        ) from None
    return exitcodes.OK
