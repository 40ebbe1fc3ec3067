"""`pong selfplay`: the demo and smoke test — a real two-process match on loopback, verified.

A host and a joiner run as two OS processes (`pong host` / `pong join`, headless, bot-driven) over
loopback TCP on a free port. When both have finished, both replays are re-simulated and checked,
and the two final chains must be equal. Exit 0 only when everything agrees.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from typing import Any

from lockstep.engine import MAX_DELAY_FRAMES
from replay.format import ReplayError
from replay.reader import read_replay
from replay.verify import verify_replay
from tools import args as types
from tools import exitcodes
from tools.exitcodes import CommandError
from tools.output import report, say
from tools.procmatch import run_match


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--frames", type=types.frames, help="end the match after this many frames")
    parser.add_argument("--points", type=types.points, default=5, help="points to win (default 5)")
    parser.add_argument("--seed", type=types.seed, default=1, help="seed of the match (default 1)")
    parser.add_argument(
        "--delay",
        type=fixed_delay,
        default=2,
        metavar="N",
        help="input delay in frames, 0-30 (default 2; fixed, so the same seed plays the same match)",
    )
    parser.add_argument(
        "--out",
        metavar="DIR",
        help="where to keep both replays (default: a temporary directory, removed when all is well)",
    )
    parser.add_argument(
        "--realtime", action="store_true", help="play at 60 Hz instead of as fast as possible"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")


def fixed_delay(text: str) -> int:
    return types.int_in(text, 0, MAX_DELAY_FRAMES, "delay")


def replay_paths(out_dir: str) -> dict[str, str]:
    """host.replay and joiner.replay in `out_dir`, or host-2.replay and joiner-2.replay and so on
    when those are taken: a replay already there is never overwritten. Both are created (empty)
    here, so no other run takes them meanwhile."""
    for n in range(1, 10_000):
        suffix = "" if n == 1 else f"-{n}"
        paths = {name: os.path.join(out_dir, f"{name}{suffix}.replay") for name in ("host", "joiner")}
        created: list[str] = []
        try:
            for path in paths.values():
                os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
                created.append(path)
        except FileExistsError:
            for path in created:
                os.remove(path)
            continue
        except OSError as exc:
            raise CommandError(f"cannot write the replays in {out_dir}: {exc.strerror}") from None
        return paths
    raise CommandError(f"{out_dir} is full of selfplay replays already: give another --out")


def run(args: argparse.Namespace) -> int:
    temporary = args.out is None
    out_dir = args.out or tempfile.mkdtemp(prefix="pong-selfplay-")
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise CommandError(f"--out {out_dir} is a file, not a directory")
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as exc:
        raise CommandError(f"cannot use {out_dir} for the replays: {exc.strerror}") from None
    paths = replay_paths(out_dir)
    common = ["--headless", "--json"] + ([] if args.realtime else ["--fast"])
    match = ["--seed", str(args.seed), "--points", str(args.points), "--delay", str(args.delay)]
    if args.frames:
        match += ["--frames", str(args.frames)]
    try:
        match_run = run_match(
            ["--bot", "tracker", "--name", "host-bot", "--record", paths["host"], *common, *match],
            ["--bot", "tracker", "--name", "joiner-bot", "--record", paths["joiner"], *common],
            timeout_s=None,  # a long --realtime match may take hours; each peer ends on its own
        )
    except KeyboardInterrupt:
        say(f"selfplay stopped; the replays so far are in {out_dir}", sys.stderr)
        raise
    elapsed = match_run.seconds
    finished = {"host": match_run.host, "joiner": match_run.joiner}

    problems: list[str] = []
    results: dict[str, dict[str, Any]] = {}
    for name, peer_run in finished.items():
        if peer_run.result is None or peer_run.code != 0:
            problems.append(f"{name} exited {peer_run.code}: {peer_run.stderr or 'no result'}")
        if peer_run.result is not None:
            results[name] = peer_run.result
    verified: dict[str, Any] = {}
    for name, path in paths.items():
        try:
            outcome = verify_replay(read_replay(path))
        except ReplayError as exc:
            problems.append(f"{name} replay unreadable: {exc}")
            continue
        verified[name] = outcome
        if not outcome.ok:
            problems.append(f"{name} replay fails verification at frame {outcome.first_bad_frame}")
        if outcome.truncated:
            problems.append(f"{name} replay is truncated")
    chains = {str(r.get("final_chain")) for r in results.values()}
    chains_equal = len(results) == 2 and len(chains) == 1
    # Final chains mean something only for a match both sides finished; anything else is already
    # a problem above, and comparing cut-short histories would only add noise.
    both_finished = len(results) == 2 and all(r.get("result") == "finished" for r in results.values())
    if both_finished and not chains_equal:
        problems.append(f"the two peers' final chains differ: {sorted(chains)}")
    for name, check in verified.items():
        claimed = results.get(name, {}).get("final_chain")
        if (
            both_finished
            and claimed
            and check.ok
            and not check.truncated
            and check.final_chain.hex() != claimed
        ):
            problems.append(f"the {name} replay re-simulates to {check.final_chain.hex()}, not {claimed}")

    host_result = results.get("host", {})
    frames = host_result.get("frames", 0)
    bytes_per_frame = (
        (host_result.get("bytes_sent", 0) + host_result.get("bytes_received", 0)) / 2 / frames
        if frames
        else 0.0
    )
    score = host_result.get("score") or [0, 0]
    fields: dict[str, Any] = {
        "ok": not problems,
        "result": host_result.get("result"),
        "frames": frames,
        "score": score,
        "final_chain": host_result.get("final_chain"),
        "chains_equal": chains_equal,
        "replays_verified": len(verified) == 2 and all(v.ok for v in verified.values()),
        "stalls": {name: r.get("stalls") for name, r in results.items()},
        "rtt_ms": host_result.get("rtt_ms"),
        "input_delay": host_result.get("input_delay"),
        "bytes_per_frame": round(bytes_per_frame, 3),
        "seconds": round(elapsed, 2),
        "replays": paths,
        "problems": problems,
    }
    if problems:
        summary = "selfplay FAILED: " + "; ".join(problems) + f"; the replays are in {out_dir}"
    else:
        # In --fast every frame waits for the other process by design: a count of such waits
        # says nothing there (the JSON keeps it). At 60 Hz a wait is a frame shown late.
        stalls = fields["stalls"]
        waits = (
            f", frames late waiting for the peer {stalls['host']} (host) / {stalls['joiner']} (joiner)"
            if args.realtime
            else ""
        )
        if temporary:
            shutil.rmtree(out_dir, ignore_errors=True)
            fields["replays"] = None
            where = "(removed; --out DIR keeps them)"
        else:
            where = f"in {out_dir}"
        summary = (
            f"selfplay ok: {frames} frames ({frames / 60:.0f} s of play) in {elapsed:.1f} s, score "
            f"{score[0]}-{score[1]}{waits}, RTT {fields['rtt_ms']} ms, {bytes_per_frame:.2f} bytes/frame "
            f"each way, chains equal ({fields['final_chain']}), both replays verified {where}"
        )
    report(summary, fields, args.json, failed=bool(problems))
    if not problems:
        return exitcodes.OK
    codes = {run.code for run in finished.values()}
    if exitcodes.USAGE in codes:
        return exitcodes.USAGE  # e.g. a replay that could not be written (a full disk)
    network = any(r.get("result") not in ("finished", "desync") for r in results.values()) or len(results) < 2
    return exitcodes.NETWORK if network else exitcodes.CHECK_FAILED
