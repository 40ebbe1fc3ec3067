"""`pong bench`: the performance figures (docs/cli.md, `pong bench`), each against its target.

Figures are measured, never asserted by tests: timing depends on the machine. Each figure is a
function returning a number; later subsystems add theirs to `FIGURES`. A figure that cannot be
measured (its match failed, its replay did not verify) raises `CommandError`: `pong bench` then
says so in one line and exits 1 (a check failed) or 3 (a network failure).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from lockstep.game import Game
from lockstep.rules import Rules
from lockstep.script import random_inputs
from tools import exitcodes
from tools.exitcodes import CommandError
from tools.netns import unavailable_reason as _netns_reason
from tools.output import report, say


@dataclass(frozen=True)
class Figure:
    key: str
    measure: Callable[[], float]
    target: float
    higher_is_better: bool
    unit: str
    strict: bool = False  # the target itself misses: "< 1 %" rather than "<= 1 %"

    @property
    def relation(self) -> str:
        return (">" if self.higher_is_better else "<") + ("" if self.strict else "=")

    def meets(self, value: float) -> bool:
        if self.higher_is_better:
            return value > self.target if self.strict else value >= self.target
        return value < self.target if self.strict else value <= self.target


def _best_rate(frames: int, repeats: int, run: Callable[[], None]) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return frames / best


def sim_fps() -> float:
    """Steps per second with the hash chain, on a match that never ends (every frame moves)."""
    rules = Rules(points_to_win=999)
    frame_inputs = random_inputs(7, 200_000)

    def play() -> None:
        Game(rules, 7).run(frame_inputs)

    return _best_rate(len(frame_inputs), 3, play)


def wire_bytes_per_frame() -> float:
    """TCP payload per frame per direction over a 10,000-frame match of the in-memory pair.

    Everything the protocol sends counts: handshake, inputs, chain checks, pings, goodbyes.
    The pair runs on a simulated 60 Hz clock with 20 ms one-way latency.
    """
    from lockstep.bots import make_bot
    from peer.pair import make_pair, run_pair

    frames = 10_000
    rules = Rules(points_to_win=999, frame_limit=frames)
    host, joiner = make_pair(rules, 1)
    run = run_pair(
        host,
        joiner,
        make_bot("tracker", rules, 0).decide,
        make_bot("tracker", rules, 1).decide,
        one_way_ms=20,
        tick_ms=17,
    )
    if host.outcome is None or host.outcome.result != "finished":
        ended = "did not end" if host.outcome is None else f"ended with {host.outcome.result}"
        raise CommandError(f"the in-memory bench match {ended}", exitcodes.CHECK_FAILED)
    return (run.to_host.bytes_carried + run.to_joiner.bytes_carried) / 2 / frames


REPLAY_HOUR_FRAMES = 216_000  # one hour at 60 frames/s


def _record_hour_replay(directory: str) -> str:
    """A one-hour replay of a match that never ends by points, written by the streaming recorder."""
    from replay.matches import record_inputs

    path = os.path.join(directory, "hour.replay")
    frame_inputs = random_inputs(7, REPLAY_HOUR_FRAMES)
    record_inputs(path, Rules(points_to_win=999), 7, frame_inputs, end_reason="quit")
    return path


def verify_hour_s() -> float:
    """Seconds to verify a one-hour replay: read the file, re-simulate, check every checkpoint
    (what `pong replay verify` does; best of 3)."""
    from replay.verify import verify_file

    best = float("inf")
    with tempfile.TemporaryDirectory() as tmp:
        path = _record_hour_replay(tmp)
        for _ in range(3):
            start = time.perf_counter()
            result = verify_file(path)
            best = min(best, time.perf_counter() - start)
            if not result.ok or result.frames != REPLAY_HOUR_FRAMES:
                raise CommandError(
                    f"the bench replay did not verify: {result.frames} frames, first bad frame "
                    f"{result.first_bad_frame}",
                    exitcodes.CHECK_FAILED,
                )
    return best


def verify_crafted_100mb_s() -> float:
    """Seconds to verify a crafted 100 MB replay: well-formed chunks (valid CRCs) whose chains are
    all wrong. Verification reads it as a stream and stops at the first bad checkpoint (best of 3)."""
    from lockstep.chain import CHAIN_SIZE
    from replay.verify import verify_file
    from replay.writer import encode_chunk, encode_header

    header = encode_header(Rules(), 1, 2, ("a", "b"), 0)
    block = encode_chunk(bytes(60), bytes(CHAIN_SIZE)) * 10_000  # 760 KB of wrong chunks
    best = float("inf")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "crafted.replay")
        with open(path, "wb") as file:
            file.write(header)
            for _ in range(100_000_000 // len(block)):
                file.write(block)
        for _ in range(3):
            start = time.perf_counter()
            result = verify_file(path)
            best = min(best, time.perf_counter() - start)
            if result.ok or result.first_bad_frame != 60:
                raise CommandError(
                    f"the crafted replay was not refused at its first checkpoint: first bad frame "
                    f"{result.first_bad_frame}",
                    exitcodes.CHECK_FAILED,
                )
    return best


def replay_bytes_per_frame() -> float:
    """Replay file size per frame of a one-hour recording (header, chunks and footer included)."""
    with tempfile.TemporaryDirectory() as tmp:
        return os.path.getsize(_record_hour_replay(tmp)) / REPLAY_HOUR_FRAMES


def _bot_match(host_args: list[str], *, fast: bool, via: Any = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """A real two-process match on loopback (tracker bots, headless); both JSON results."""
    from tools.procmatch import run_match

    with tempfile.TemporaryDirectory(prefix="pong-bench-") as directory:
        common = ["--headless", "--bot", "tracker", "--json", *(["--fast"] if fast else [])]
        host = [*common, "--record", os.path.join(directory, "h.replay"), *host_args]
        joiner = [*common, "--record", os.path.join(directory, "j.replay")]
        run = run_match(host, joiner, via=via) if via is not None else run_match(host, joiner)
    for role, side in (("host", run.host), ("joiner", run.joiner)):
        if side.code != 0 or side.result is None:
            said = (side.stderr.strip().splitlines() or ["no output"])[-1]
            code = exitcodes.NETWORK if side.code == exitcodes.NETWORK else exitcodes.CHECK_FAILED
            raise CommandError(f"the bench match failed: the {role} exited with {side.code}: {said}", code)
    assert run.host.result is not None and run.joiner.result is not None
    return run.host.result, run.joiner.result


def net_fps() -> float:
    """Frames per second of a --fast match between two processes on loopback (delay auto).

    Best of three: two processes handing inputs back and forth on two cores are at the mercy of
    the scheduler, and the figure is what the code can do, not how busy the machine was.
    """
    best = 0.0
    for _ in range(3):
        host, _ = _bot_match(["--points", "999", "--frames", "30000", "--seed", "3"], fast=True)
        best = max(best, float(host["frames"]) / max(1e-9, float(host["seconds"])))
    return best


def cpu_60hz_percent() -> float:
    """CPU of one headless peer playing at 60 Hz, as a percentage of one core (the busier side)."""
    host, joiner = _bot_match(["--points", "999", "--frames", "480", "--seed", "3"], fast=False)
    return max(100 * float(r["cpu_seconds"]) / max(1e-9, float(r["seconds"])) for r in (host, joiner))


def spectator_cpu_ratio() -> float:
    """The host's CPU at 60 Hz with 8 spectators following its match over its CPU with none."""
    from tools.spectating import spectating

    match = ["--points", "999", "--frames", "600", "--seed", "3"]
    alone, _ = _bot_match([*match, "--spectators", "0"], fast=False)
    with tempfile.TemporaryDirectory(prefix="pong-bench-") as directory:
        watched, _ = _bot_match(match, fast=False, via=spectating(8, directory))
    if watched["spectators"] != 8:
        raise CommandError(f"only {watched['spectators']} of 8 spectators watched", exitcodes.CHECK_FAILED)
    alone_cpu, watched_cpu = (
        float(r["cpu_seconds"]) / max(1e-9, float(r["seconds"])) for r in (alone, watched)
    )
    return watched_cpu / max(1e-9, alone_cpu)


def pacing_fps_delay0() -> float:
    """Frames per second of a 60 Hz match between two processes on loopback at input delay 0 (the
    slower side): with no delay to hide the peer, every frame needs the peer's input of that frame."""
    host, joiner = _bot_match(
        ["--points", "999", "--frames", "600", "--seed", "3", "--delay", "0"], fast=False
    )
    return min(float(r["frames"]) / max(1e-9, float(r["seconds"])) for r in (host, joiner))


@contextlib.contextmanager
def _through_netsim_100ms(port: int) -> Iterator[int]:
    """A proxy adding 50 ms +-10 ms each way: 100 ms RTT with jitter."""
    from tools.netsim import Impairment, NetSim

    with NetSim("127.0.0.1", port, Impairment(delay_ms=50, jitter_ms=10)) as sim:
        yield sim.port


def stall_fraction_100ms() -> float:
    """Stalled frames / frames of a 60 Hz match through netsim at 100 ms RTT (+-10 ms jitter), delay auto."""
    host, joiner = _bot_match(
        ["--points", "999", "--frames", "900", "--seed", "3"], fast=False, via=_through_netsim_100ms
    )
    return max(float(r["stalls"]) / max(1, int(r["frames"])) for r in (host, joiner))


@functools.cache
def _rollback_match_100ms() -> tuple[dict[str, Any], dict[str, Any]]:
    """One 60 Hz rollback match through netsim at 100 ms RTT (+-10 ms), delay auto: the three
    rollback figures come from it, so measuring them all plays it once."""
    return _bot_match(
        ["--points", "999", "--frames", "900", "--seed", "3", "--netcode", "rollback"],
        fast=False,
        via=_through_netsim_100ms,
    )


def rollback_input_delay_100ms() -> float:
    """The input delay `--delay auto` picks for a rollback match at 100 ms RTT (lockstep: 7-8)."""
    host, _ = _rollback_match_100ms()
    return float(host["input_delay"])


def rollback_stall_fraction_100ms() -> float:
    """Stalled frames / frames of that rollback match (the side that stalled more)."""
    host, joiner = _rollback_match_100ms()
    return max(float(r["stalls"]) / max(1, int(r["frames"])) for r in (host, joiner))


def rollback_cpu_60hz_percent() -> float:
    """CPU of one peer of that rollback match, predictions and re-simulation included, as a
    percentage of one core (the busier side)."""
    host, joiner = _rollback_match_100ms()
    return max(100 * float(r["cpu_seconds"]) / max(1e-9, float(r["seconds"])) for r in (host, joiner))


NETNS_LOSS_PERCENT = 3


@functools.cache
def _netns_matches() -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """A lockstep and a rollback 60 Hz match of 900 frames side by side across two network
    namespaces whose veth link drops 3 % of the packets each way (tools/netns.py; root only)."""
    from concurrent.futures import ThreadPoolExecutor

    from tools.netns import NetnsUnavailable, run_match, veth_pair

    common = ["--headless", "--bot", "tracker", "--timeout", "20"]
    try:
        with (
            veth_pair(loss_percent=NETNS_LOSS_PERCENT) as pair,
            tempfile.TemporaryDirectory(prefix="pong-bench-") as directory,
            ThreadPoolExecutor(2) as pool,
        ):
            runs = {}
            for netcode in ("lockstep", "rollback"):
                host_args = ["--netcode", netcode, "--points", "999", "--frames", "900", "--seed", "3"]
                host_args += ["--record", f"{netcode}-h.replay", *common]
                join_args = ["--record", f"{netcode}-j.replay", *common]
                runs[netcode] = pool.submit(run_match, pair, host_args, join_args, directory)
            return {netcode: run.result() for netcode, run in runs.items()}
    except NetnsUnavailable as exc:
        raise CommandError(f"no network namespaces: {exc}", exitcodes.NETWORK) from None
    except RuntimeError as exc:
        raise CommandError(f"the bench match failed: {exc}", exitcodes.NETWORK) from None


def _netns_stall_fraction(netcode: str) -> float:
    host, joiner = _netns_matches()[netcode]
    return max(float(r["stalls"]) / max(1, int(r["frames"])) for r in (host, joiner))


def netns_lockstep_stall_fraction() -> float:
    """Stalled frames / frames of a lockstep 60 Hz match over a real link losing 3 % each way."""
    return _netns_stall_fraction("lockstep")


def netns_rollback_stall_fraction() -> float:
    """The same for a rollback match, played at the same time over the same link."""
    return _netns_stall_fraction("rollback")


FIGURES: list[Figure] = [
    Figure("sim_fps", sim_fps, 300_000, True, "frames/s"),
    Figure("wire_bytes_per_frame", wire_bytes_per_frame, 4, False, "bytes"),
    Figure("verify_hour_s", verify_hour_s, 1, False, "s"),
    Figure("verify_crafted_100mb_s", verify_crafted_100mb_s, 2, False, "s"),
    Figure("replay_bytes_per_frame", replay_bytes_per_frame, 1.5, False, "bytes"),
    Figure("net_fps", net_fps, 15_000, True, "frames/s"),
    Figure("cpu_60hz_percent", cpu_60hz_percent, 10, False, "%"),
    Figure("stall_fraction_100ms", stall_fraction_100ms, 0.01, False, "", strict=True),
    Figure("pacing_fps_delay0", pacing_fps_delay0, 59.4, True, "frames/s"),
    Figure("rollback_input_delay_100ms", rollback_input_delay_100ms, 2, False, "frames"),
    Figure("rollback_stall_fraction_100ms", rollback_stall_fraction_100ms, 0.01, False, "", strict=True),
    Figure("rollback_cpu_60hz_percent", rollback_cpu_60hz_percent, 15, False, "%"),
    Figure("spectator_cpu_ratio", spectator_cpu_ratio, 2, False, "x"),
]
if _netns_reason() is None:  # root with iproute2 and iptables: a real lossy link
    FIGURES += [
        Figure("netns_lockstep_stall_fraction", netns_lockstep_stall_fraction, 0.05, False, ""),
        Figure("netns_rollback_stall_fraction", netns_rollback_stall_fraction, 0.05, False, ""),
    ]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    parser.add_argument(
        "--only",
        action="append",
        choices=[f.key for f in FIGURES],
        metavar="KEY",
        help="measure only this figure (repeatable)",
    )


def run(args: argparse.Namespace) -> int:
    results: dict[str, float] = {}
    lines: list[str] = []
    for figure in FIGURES:
        if args.only and figure.key not in args.only:
            continue
        try:
            value = figure.measure()
        except (CommandError, OSError) as exc:
            if lines:  # what was measured before stays on the screen
                say("\n".join(lines))
            code = exc.code if isinstance(exc, CommandError) else exitcodes.CHECK_FAILED
            what = (exc.strerror or str(exc)) if isinstance(exc, OSError) else str(exc)
            raise CommandError(f"bench {figure.key} could not be measured: {what}", code) from None
        results[figure.key] = round(value, 4)
        verdict = "ok" if figure.meets(value) else "MISSED"
        lines.append(
            f"{figure.key:30} {value:14,.3f} {figure.unit:10} target {figure.relation} {figure.target:,} "
            f"{verdict}"
        )
    report("\n".join(lines), results, args.json)
    return exitcodes.OK
