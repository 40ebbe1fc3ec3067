"""`pong replay play|verify|info FILE`: watch, check and describe a replay.

`verify` and `info` are headless and never import pygame; `play` imports it only once the file has
been read and a display is known to exist. `verify` and `info` read the file as a stream (one chunk
in memory at a time); `play` needs all of it.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import sys
from typing import Any

from lockstep.rules import TICKS_PER_SECOND, Rules, rules_digest
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
    from replay.verify import verify_file

    try:
        result = verify_file(args.file)
    except ReplayError as exc:
        raise CommandError(str(exc), exitcodes.USAGE) from None
    for warning in result.warnings:
        say(f"pong: warning: {warning}", sys.stderr)
    cut = " (truncated: only the intact prefix was checked)" if result.truncated else ""
    if result.ok:
        summary = (
            f"replay ok: {result.frames} frames, {result.checkpoints} checkpoints match, "
            f"final chain {result.final_chain.hex()}{cut}"
        )
    else:
        rest = "" if result.read_to_end else "; verification stopped there, the rest of the file is not read"
        summary = (
            f"replay MISMATCH: the chain differs at the checkpoint of frame {result.first_bad_frame} "
            f"(last good checkpoint: frame {result.last_good_frame}); these inputs do not reproduce the "
            f"recorded game{cut}{rest}"
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
            "read_to_end": result.read_to_end,
            "end_reason": result.end_reason,
            "warnings": list(result.warnings),
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
    from replay.verify import summarize_file
    from replay.viewer import format_time

    try:
        summary = summarize_file(args.file)
    except ReplayError as exc:
        raise CommandError(str(exc), exitcodes.USAGE) from None
    for warning in summary.warnings:
        say(f"pong: warning: {warning}", sys.stderr)
    header, state, frames = summary.header, summary.final_state, summary.frames
    won = winner(state)
    winner_name = None if won is None else ("left", "right")[won]
    per_frame = summary.size_bytes / frames if frames else None
    left, right = header.names
    end_reason = summary.footer.end_reason if summary.footer is not None else None
    ending = end_reason or "none recorded (truncated)"
    result = "match not over" if not state.over else "a draw" if won is None else f"{winner_name} wins"
    lines = [
        f"replay {args.file}",
        f"  format {header.format_version}, SIM_VERSION {header.sim_version}, "
        f"rules {rules_digest(header.rules)} ({_rules_changes(header.rules)})",
        f"  players {left!r} (left) vs {right!r} (right), seed {header.seed}, input delay "
        f"{header.input_delay} frame{'' if header.input_delay == 1 else 's'}, netcode {header.netcode}",
        f"  created {_created(header.created_unix)}",
        f"  {frames} frames ({format_time(frames)}), {summary.chunks} chunks, "
        f"{summary.size_bytes} bytes" + (f" ({per_frame:.3f} bytes/frame)" if per_frame else ""),
        f"  final score {state.score_l} : {state.score_r} ({result}), ended: {ending}",
        f"  truncated: {'yes' if summary.truncated else 'no'}",
    ]
    for resume in summary.resumes:
        what = "seat taken back after a crash" if resume.kind == "rejoin" else "reconnected after a drop"
        lines.append(f"  {what} at frame {resume.frame} (paused {resume.paused_ms / 1000:.1f} s)")
    fields: dict[str, Any] = {
        "path": args.file,
        "format_version": header.format_version,
        "sim_version": header.sim_version,
        "rules_id": rules_digest(header.rules),
        "rules": dataclasses.asdict(header.rules),
        "seed": header.seed,
        "input_delay": header.input_delay,
        "netcode": header.netcode,
        "names": list(header.names),
        "created_unix": header.created_unix,
        "created": _created(header.created_unix),
        "frames": frames,
        "duration_s": round(frames / TICKS_PER_SECOND, 3),
        "score": [state.score_l, state.score_r],
        "over": bool(state.over),
        "winner": winner_name,
        "end_reason": end_reason,
        "truncated": summary.truncated,
        "chunks": summary.chunks,
        "recorded_final_chain": (summary.recorded_final_chain or b"").hex() or None,
        "size_bytes": summary.size_bytes,
        "bytes_per_frame": round(per_frame, 4) if per_frame else None,
        "warnings": list(summary.warnings),
        "resumes": [dataclasses.asdict(resume) for resume in summary.resumes],
        "reconnects": sum(resume.kind == "reconnect" for resume in summary.resumes),
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
