"""`pong desync A [B] [--json] [--png OUT]`: find and explain where two recordings diverge.

A and B are the two peers' replays or desync reports (JSON), in any mix. With one FILE, the
recording is checked against this build's re-simulation of its own inputs instead.

Frame numbering is the replay's: frame f is the state after f steps, and "the input of frame f"
is the packed input of the step that turned state f - 1 into state f (a replay's first input byte
is frame 1's). The chain of frame f certifies every state up to f.

The method
----------
1. Load each side. A replay gives the header (rules, seed), every frame's input and the recorded
   chain at each checkpoint (every 60 frames and the last frame). A report gives, for the frames
   around the divergence, the inputs, the chains and the full states the peer really had. A replay
   picks up its own report automatically (a `desync-*.json` in its directory whose `replay` field
   names it and whose inputs agree with it); a report picks up the replay it names, when present.

2. Work out, for each side, what its real game was. Re-simulating a side's inputs gives the game
   those inputs make *with this build*; the recorded chains say what the peer really had. Where a
   recorded chain agrees with the re-simulation, the two games are the same up to that frame (the
   chain is cumulative). The first recorded chain that disagrees means the peer's game departed
   from its inputs somewhere after the last agreeing one: a perturbed run (`--debug-desync-at`), a
   different build, corrupted memory. A replay alone only narrows that to one chunk, so it is
   pinned down exactly, where possible, by
   - the report's full state at the first frame after the last agreeing one (its chain must
     follow from the re-simulated chain before it), or else
   - a search for a one-unit change (+1 or -1) of one state field right after one frame of that
     chunk which reproduces the recorded chain exactly (what `--debug-desync-at` does; 8-byte
     chains make a false match practically impossible: a found change is a proof, not a guess).
   The side's real game is then known at every frame up to the last recorded chain that this
   model reproduces, and at the recorded frames (and report states) beyond.

3. Compare A and B. Different seeds or rules are a divergence at frame 0. Otherwise the first
   frame whose input differs, and the first frame where both real games are known and their chains
   differ, after the last frame where both are known and equal; when those two frames are adjacent
   the divergence is exact, else it lies in the range between them (reported as `frame_range`).
   Only the frames both recordings hold are compared: a truncated recording never "differs" after
   its end.

4. At that frame, diff the two states field by field (where they are known), show the inputs
   around it, and with `--png` draw both states side by side with the differing objects outlined
   in red (the other side's position as a thin blue outline) and the differing fields listed.

With one recording, step 2 is the whole answer: the first recorded checkpoint that disagrees
names the first bad chunk ("recorded by a different build"), and the exact frame and field when
the report or the search finds them; the diff is then recorded (a) against re-simulated (b).

Exit codes: 0 no divergence, 1 diverged, 2 unreadable input. JSON (`--json`, last stdout line):
`diverged`, `first_frame`, `diff` (a list of {field, a, b}), and `kind` (`header`, `inputs` or
`chain`), `exact`, `frame_range`, `input_frame`, `diff_frame`, `inputs`, `a`, `b` (what each side
is and what its re-simulation showed), `explanation`, `png`.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lockstep.chain import CHAIN_SIZE, chain_next, chain_start
from lockstep.codec import encode
from lockstep.inputs import unpack
from lockstep.rules import SIM_VERSION, Rules, RulesError
from lockstep.sim import step
from lockstep.state import FIELDS, State, initial_state
from replay.format import MAGIC, ReplayError
from replay.reader import Replay, read_replay
from tools import exitcodes
from tools.exitcodes import CommandError
from tools.output import report

if TYPE_CHECKING:
    import pygame

REPORT_KIND = "lockstep-pong desync report"  # peer.report.REPORT_KIND (not imported: keep start-up light)
MAX_REPORT_BYTES = 4 << 20
MAX_SEARCH_FRAMES = 240  # the one-unit-change search covers at most this many frames (4 chunks)
SEARCH_DELTAS = (-1, 1)
INPUTS_BEFORE = 5
INPUTS_AFTER = 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Find the first frame where two recordings (replays or desync reports) differ, in inputs or "
        "in the hash chain, re-simulate, and show the two states there field by field. With one "
        "replay: check it against this build and narrow a mismatch to the first bad chunk. "
        "Exit 0 no divergence, 1 diverged, 2 unreadable."
    )
    parser.add_argument("a", metavar="A", help="a replay or a desync report (desync-FRAME.json)")
    parser.add_argument("b", metavar="B", nargs="?", help="the other peer's replay or report")
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    parser.add_argument("--png", metavar="OUT", help="draw both states side by side into this PNG file")


# -- loading ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Base:
    """Where a side's re-simulation starts: a frame, its state and its chain."""

    frame: int
    state: State
    chain: bytes


@dataclass(frozen=True)
class ParsedReport:
    path: str
    frame: int
    seed: int
    rules: Rules
    names: tuple[str, str]
    replay_name: str
    base: Base | None
    input_start: int
    inputs: bytes
    chains: dict[int, bytes]
    states: dict[int, State]
    sim_version: int | None
    detected_by: str | None


@dataclass
class Side:
    """One recording: what it says (inputs, recorded chains and states) and where it came from."""

    label: str
    path: str
    rules: Rules
    seed: int
    names: tuple[str, str]
    base: Base | None  # None: nothing to re-simulate from (an old report)
    input_start: int  # the frame of inputs[0]
    inputs: bytes
    recorded_chains: dict[int, bytes]
    recorded_states: dict[int, State]
    replay: Replay | None = None
    report_path: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def input_end(self) -> int:
        """The last frame whose input is known (input_start - 1 when none is)."""
        return self.input_start + len(self.inputs) - 1

    @property
    def end_frame(self) -> int:
        """The last frame this recording knows anything about."""
        last = max(self.recorded_chains, default=0)
        if self.base is not None:
            last = max(last, self.input_end)
        return last

    @property
    def first_frame(self) -> int:
        if self.base is not None:
            return self.base.frame
        return min(self.recorded_chains, default=0)

    def input_at(self, frame: int) -> int | None:
        k = frame - self.input_start
        return self.inputs[k] if 0 <= k < len(self.inputs) else None

    def describe(self) -> str:
        parts = []
        if self.replay is not None:
            parts.append("replay")
        if self.report_path is not None:
            parts.append(f"report {os.path.basename(self.report_path)}")
        return " + ".join(parts)


def _unreadable(message: str) -> CommandError:
    return CommandError(message, exitcodes.USAGE)


def _sniff(path: str) -> str:
    """'report' for a JSON file, 'replay' otherwise (the replay reader then explains what is wrong)."""
    try:
        if not os.path.isfile(path):
            return "replay"
        with open(path, "rb") as file:
            head = file.read(len(MAGIC) + 64)
    except OSError:
        return "replay"
    if head.startswith(MAGIC):
        return "replay"
    return "report" if head.lstrip().startswith(b"{") else "replay"


def load_side(label: str, path: str) -> Side:
    if _sniff(path) == "report":
        parsed = parse_report(path, _load_json(path))
        named = os.path.join(os.path.dirname(os.path.abspath(path)), parsed.replay_name)
        if parsed.replay_name and os.path.isfile(named):
            try:
                side = _side_from_replay(label, named, read_replay(named))
            except ReplayError as exc:
                side = _side_from_report(label, parsed)
                side.notes.append(f"the replay it names could not be used: {exc}")
                return side
            problem = _attach(side, parsed)
            if problem is None:
                side.path = path
                return side
            alone = _side_from_report(label, parsed)
            alone.notes.append(f"not using {parsed.replay_name}: {problem}")
            return alone
        return _side_from_report(label, parsed)
    try:
        replay = read_replay(path)
    except ReplayError as exc:
        raise _unreadable(str(exc)) from None
    side = _side_from_replay(label, path, replay)
    _find_report(side)
    return side


def _side_from_replay(label: str, path: str, replay: Replay) -> Side:
    rules, seed = replay.rules, replay.seed
    chains = dict(replay.checkpoints)
    side = Side(
        label=label,
        path=path,
        rules=rules,
        seed=seed,
        names=replay.names,
        base=Base(0, initial_state(rules, seed), chain_start(rules, seed)),
        input_start=1,
        inputs=replay.frame_inputs,
        recorded_chains=chains,
        recorded_states={},
        replay=replay,
    )
    footer = replay.footer
    if footer is not None:
        known = chains.get(footer.frames)
        if known is None:
            chains[footer.frames] = footer.final_chain
        elif known != footer.final_chain:
            side.notes.append(
                f"its footer's final chain differs from its last checkpoint (frame {footer.frames})"
            )
    side.notes.extend(replay.warnings)
    return side


def _side_from_report(label: str, parsed: ParsedReport) -> Side:
    if parsed.sim_version is not None and parsed.sim_version != SIM_VERSION:
        note = f"written by SIM_VERSION {parsed.sim_version}; this pong simulates SIM_VERSION {SIM_VERSION}"
    else:
        note = ""
    side = Side(
        label=label,
        path=parsed.path,
        rules=parsed.rules,
        seed=parsed.seed,
        names=parsed.names,
        base=parsed.base,
        input_start=parsed.input_start,
        inputs=parsed.inputs,
        recorded_chains=dict(parsed.chains),
        recorded_states=dict(parsed.states),
        report_path=parsed.path,
    )
    if note:
        side.notes.append(note)
    return side


def _attach(side: Side, parsed: ParsedReport) -> str | None:
    """Add a report's chains and states to its own replay; the reason when they do not belong."""
    if parsed.seed != side.seed or parsed.rules != side.rules:
        return "its seed or rules differ from the replay's"
    for k, value in enumerate(parsed.inputs):
        if side.input_at(parsed.input_start + k) not in (None, value):
            return f"its input of frame {parsed.input_start + k} differs from the replay's"
    for frame, chain in parsed.chains.items():
        if side.recorded_chains.get(frame, chain) != chain:
            return f"its chain of frame {frame} differs from the replay's checkpoint"
    side.recorded_chains.update(parsed.chains)
    side.recorded_states.update(parsed.states)
    side.report_path = parsed.path
    return None


def _find_report(side: Side) -> None:
    """Attach the replay's own desync report when one lies next to it (newest that fits)."""
    directory = os.path.dirname(os.path.abspath(side.path))
    name = os.path.basename(side.path)
    candidates = []
    for path in glob.glob(os.path.join(glob.escape(directory), "desync-*.json")):
        if not os.path.isfile(path):  # never open a FIFO or a directory that happens to match
            continue
        try:
            data = _load_json(path)
            if not isinstance(data, dict) or data.get("replay") != name:
                continue
            parsed = parse_report(path, data)
            candidates.append((os.path.getmtime(path), path, parsed))
        except (CommandError, OSError):
            continue
    for _, path, parsed in sorted(candidates, reverse=True):
        if _attach(side, parsed) is None:
            return
        side.notes.append(f"ignored {os.path.basename(path)}: it does not belong to this replay")


def _load_json(path: str) -> Any:
    try:
        with open(path, "rb") as file:
            data = file.read(MAX_REPORT_BYTES + 1)
    except OSError as exc:
        raise _unreadable(f"cannot read {path}: {exc.strerror or exc}") from None
    if len(data) > MAX_REPORT_BYTES:
        raise _unreadable(f"{path}: more than {MAX_REPORT_BYTES} bytes: not a desync report")
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise _unreadable(f"{path}: not a replay, and not valid JSON: {exc}") from None


def parse_report(path: str, data: Any) -> ParsedReport:
    """A desync report's contents, validated; raises CommandError (exit 2) naming what is wrong."""

    def bad(what: str) -> CommandError:
        return _unreadable(f"{path}: not a usable desync report: {what}")

    def integer(obj: Any, key: str, where: str = "") -> int:
        value = obj.get(key) if isinstance(obj, dict) else None
        if type(value) is not int:
            raise bad(f"{where}{key!r} must be an integer")
        return value

    def chain(value: Any, what: str) -> bytes:
        try:
            raw = bytes.fromhex(value) if isinstance(value, str) else b""
        except ValueError:
            raw = b""
        if len(raw) != CHAIN_SIZE:
            raise bad(f"{what} must be {CHAIN_SIZE} bytes of hex")
        return raw

    def state(value: Any, what: str) -> State:
        if not isinstance(value, dict) or any(type(value.get(name)) is not int for name in FIELDS):
            raise bad(f"{what} must hold every state field as an integer")
        result = State(**{name: value[name] for name in FIELDS})
        try:
            encode(result)
        except ValueError:
            raise bad(f"{what} has a field out of range") from None
        return result

    if not isinstance(data, dict) or data.get("kind") != REPORT_KIND:
        raise bad(f'no "kind": "{REPORT_KIND}"')
    frame = integer(data, "frame")
    seed = integer(data, "seed")
    if not 0 <= seed < 1 << 64 or frame < 0:
        raise bad("seed or frame out of range")
    raw_rules = data.get("rules")
    if not isinstance(raw_rules, dict):
        raise bad("'rules' must be an object")
    try:
        rules = Rules(**raw_rules)
    except (TypeError, RulesError) as exc:
        raise bad(f"invalid rules: {exc}") from None
    names_value = data.get("names")
    names = ("left", "right")
    if (
        isinstance(names_value, list)
        and len(names_value) == 2
        and all(isinstance(n, str) for n in names_value)
    ):
        names = (names_value[0], names_value[1])
    replay_name = data.get("replay")
    replay_name = os.path.basename(replay_name) if isinstance(replay_name, str) else ""
    versions = data.get("versions")
    sim_version = versions.get("sim") if isinstance(versions, dict) else None

    chains: dict[int, bytes] = {}
    states: dict[int, State] = {}
    inputs: dict[int, int] = {}
    recent = data.get("recent_frames")
    if recent is not None and not isinstance(recent, list):
        raise bad("'recent_frames' must be a list")
    if recent:
        for entry in recent:
            f = integer(entry, "frame", "recent_frames: ")
            chains[f] = chain(entry.get("chain"), f"the chain of frame {f}")
            states[f] = state(entry.get("state"), f"the state of frame {f}")
            if states[f].frame != f:
                raise bad(f"the state listed for frame {f} is the state of frame {states[f].frame}")
            value = entry.get("input")
            if value is not None:
                if type(value) is not int or not 0 <= value <= 15:
                    raise bad(f"the input of frame {f} must be 0..15")
                inputs[f] = value
    else:
        # Report format 1: inputs numbered by the step they start (frame f: state f -> f + 1).
        for entry in data.get("recent_inputs") or []:
            f = integer(entry, "frame", "recent_inputs: ")
            value = integer(entry, "input", "recent_inputs: ")
            if 0 <= value <= 15:
                inputs[f + 1] = value
    for key, at in (("state_last_agreed", None), ("state_first_divergent", frame)):
        value = data.get(key)
        if value is not None:
            s = state(value, f"{key!r}")
            if at is None or s.frame == at:
                states.setdefault(s.frame, s)
    if frame in states and frame not in chains:
        chains[frame] = chain(data.get("local_chain"), "'local_chain'")

    base = None
    input_start = min(inputs, default=frame + 1)
    if recent:
        first = min(f for f in states if f in chains)
        base = Base(first, states[first], chains[first])
        input_start = first + 1
    values = bytearray()
    while input_start + len(values) in inputs:
        values.append(inputs[input_start + len(values)])
    detected = data.get("detected_by")
    return ParsedReport(
        path=path,
        frame=frame,
        seed=seed,
        rules=rules,
        names=names,
        replay_name=replay_name,
        base=base,
        input_start=input_start,
        inputs=bytes(values),
        chains=chains,
        states=states,
        sim_version=sim_version if type(sim_version) is int else None,
        detected_by=detected if isinstance(detected, str) else None,
    )


# -- re-simulation --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Model:
    """A side's real game: its inputs from its base, with the state replaced right after `frame`."""

    frame: int
    state: State
    source: str  # "report" (the peer's recorded state) or "search" (a one-unit change found)
    changes: tuple[tuple[str, int, int], ...] = ()  # (field, re-simulated value, real value)

    @property
    def field(self) -> str | None:
        return self.changes[0][0] if len(self.changes) == 1 else None

    @property
    def delta(self) -> int:
        return self.changes[0][2] - self.changes[0][1] if len(self.changes) == 1 else 0

    def describe_changes(self) -> str:
        return ", ".join(f"{name} {real} (its inputs give {plain})" for name, plain, real in self.changes)


def simulate(
    side: Side, model: Model | None = None, upto: int | None = None, want: Iterable[int] = ()
) -> tuple[bytes, dict[int, State]]:
    """Chains of every frame from the side's base (8 bytes each) and the states of `want`."""
    base = side.base
    assert base is not None
    rules = side.rules
    state = base.state.copy()
    chain = base.chain
    out = bytearray(chain)
    wanted = set(want)
    states: dict[int, State] = {}
    f = base.frame
    if f in wanted:
        states[f] = state.copy()
    inputs = side.inputs if upto is None else side.inputs[: max(0, upto - base.frame)]
    change_at = model.frame if model is not None else -1
    _step, _next = step, chain_next
    for frame_input in inputs:
        _step(state, rules, frame_input)
        f += 1
        if f == change_at:
            assert model is not None
            state = model.state.copy()
        chain = _next(chain, state)
        out += chain
        if f in wanted:
            states[f] = state.copy()
    return bytes(out), states


def _chain_of(chains: bytes, base: int, frame: int) -> bytes:
    k = (frame - base) * CHAIN_SIZE
    return chains[k : k + CHAIN_SIZE]


@dataclass
class Check:
    """A side's recorded chains against the re-simulation of its inputs (step 2 of the method)."""

    chains: bytes  # the model's chain of every frame from the base
    valid_until: int  # the real game equals the model up to this frame (-1: not at all)
    first_bad: int | None  # first recorded chain the plain re-simulation does not reproduce
    last_good: int  # the last recorded chain before it that it does (or the base frame)
    compared: int  # recorded chains compared
    model: Model | None = None
    model_first_bad: int | None = None  # first recorded chain even the model does not reproduce

    @property
    def consistent(self) -> bool:
        return self.first_bad is None


def _compare_recorded(side: Side, chains: bytes) -> tuple[int, int | None, int]:
    """(last agreeing recorded frame, first disagreeing one or None, how many compared)."""
    assert side.base is not None
    base = side.base.frame
    last = base + len(chains) // CHAIN_SIZE - 1
    good = base
    compared = 0
    for frame in sorted(side.recorded_chains):
        if not base <= frame <= last:
            continue
        compared += 1
        if _chain_of(chains, base, frame) != side.recorded_chains[frame]:
            return good, frame, compared
        good = frame
    return good, None, compared


def check_side(side: Side) -> Check:
    if side.base is None:
        return Check(b"", -1, None, -1, 0)
    plain, _ = simulate(side)
    good, bad, compared = _compare_recorded(side, plain)
    if bad is None:
        return Check(plain, good, None, good, compared)
    model = _model_from_report(side, plain, good) or _search(side, plain, good, bad)
    if model is not None:
        chains, _ = simulate(side, model)
        model_good, model_bad, _ = _compare_recorded(side, chains)
        if model_good >= bad:
            return Check(chains, model_good, bad, good, compared, model, model_bad)
    return Check(plain, good, bad, good, compared)


def _model_from_report(side: Side, plain: bytes, good: int) -> Model | None:
    """The report's state right after the last agreeing frame, if its chain follows from it."""
    assert side.base is not None
    frame = good + 1
    state = side.recorded_states.get(frame)
    recorded = side.recorded_chains.get(frame)
    if state is None or recorded is None:
        return None
    if chain_next(_chain_of(plain, side.base.frame, good), state) != recorded:
        return None
    _, plain_states = simulate(side, upto=frame, want=(frame,))
    resimulated = plain_states[frame]
    changes = tuple(
        (name, getattr(resimulated, name), getattr(state, name))
        for name in FIELDS
        if getattr(resimulated, name) != getattr(state, name)
    )
    return Model(frame, state.copy(), "report", changes)


def _search(side: Side, plain: bytes, good: int, bad: int) -> Model | None:
    """A one-unit change of one field right after one frame in (good, bad] that reproduces the
    recorded chain of `bad` exactly, or None."""
    base = side.base
    assert base is not None
    if bad - good > MAX_SEARCH_FRAMES:
        return None
    target = side.recorded_chains[bad]
    _, states = simulate(side, upto=bad, want=range(good + 1, bad + 1))
    rules = side.rules
    _step, _next = step, chain_next
    for frame in range(good + 1, bad + 1):
        prev = _chain_of(plain, base.frame, frame - 1)
        later = side.inputs[frame - side.input_start + 1 : bad - side.input_start + 1]
        for name in FIELDS:
            for delta in SEARCH_DELTAS:
                changed = states[frame].copy()
                setattr(changed, name, getattr(changed, name) + delta)
                state = changed.copy()
                try:
                    chain = _next(prev, state)
                    for frame_input in later:
                        _step(state, rules, frame_input)
                        chain = _next(chain, state)
                except Exception:  # a changed state is outside every invariant: anything may happen
                    continue
                if chain == target:
                    original = getattr(states[frame], name)
                    return Model(frame, changed, "search", ((name, original, original + delta),))
    return None


def state_of(side: Side, check: Check, frame: int) -> State | None:
    """The state the side's real game had at `frame`, where it is known."""
    if side.base is not None and side.base.frame <= frame <= min(check.valid_until, side.input_end):
        _, states = simulate(side, check.model, upto=frame, want=(frame,))
        return states.get(frame)
    return side.recorded_states.get(frame)


def known_chain(side: Side, check: Check, frame: int) -> bytes | None:
    if side.base is not None and side.base.frame <= frame <= check.valid_until:
        return _chain_of(check.chains, side.base.frame, frame)
    return side.recorded_chains.get(frame)


# -- the verdict ----------------------------------------------------------------------------------


@dataclass
class Verdict:
    diverged: bool
    first_frame: int | None = None
    kind: str | None = None
    exact: bool = False
    frame_range: tuple[int, int] | None = None
    input_frame: int | None = None
    diff_frame: int | None = None
    diff: list[dict[str, Any]] = field(default_factory=list)
    state_a: State | None = None
    state_b: State | None = None
    lines: list[str] = field(default_factory=list)
    compared: tuple[int, int] | None = None


def _state_diff(a: State | None, b: State | None) -> list[dict[str, Any]]:
    if a is None or b is None:
        return []
    return [
        {"field": name, "a": getattr(a, name), "b": getattr(b, name)}
        for name in FIELDS
        if getattr(a, name) != getattr(b, name)
    ]


def _header_diff(a: Side, b: Side) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if a.seed != b.seed:
        out.append({"field": "seed", "a": a.seed, "b": b.seed})
    for name in a.rules.__dataclass_fields__:
        va, vb = getattr(a.rules, name), getattr(b.rules, name)
        if va != vb:
            out.append({"field": f"rules.{name}", "a": va, "b": vb})
    return out


def _first_input_diff(a: Side, b: Side, lo: int, hi: int) -> int | None:
    lo = max(lo, a.input_start, b.input_start)
    hi = min(hi, a.input_end, b.input_end)
    if lo > hi:
        return None
    xs = a.inputs[lo - a.input_start : hi - a.input_start + 1]
    ys = b.inputs[lo - b.input_start : hi - b.input_start + 1]
    if xs == ys:
        return None
    return lo + next(k for k, (x, y) in enumerate(zip(xs, ys)) if x != y)


def _first_chain_diff(
    a: Side, ca: Check, b: Side, cb: Check, lo: int, hi: int
) -> tuple[int | None, int | None]:
    """(last frame both games are known and equal, first frame both are known and differ)."""
    equal: int | None = None
    dense_hi = min(ca.valid_until, cb.valid_until, hi)
    if a.base is not None and b.base is not None and lo <= dense_hi:
        xs = ca.chains[(lo - a.base.frame) * CHAIN_SIZE : (dense_hi - a.base.frame + 1) * CHAIN_SIZE]
        ys = cb.chains[(lo - b.base.frame) * CHAIN_SIZE : (dense_hi - b.base.frame + 1) * CHAIN_SIZE]
        if xs != ys:
            k = next(
                k for k in range(0, len(xs), CHAIN_SIZE) if xs[k : k + CHAIN_SIZE] != ys[k : k + CHAIN_SIZE]
            )
            frame = lo + k // CHAIN_SIZE
            return (frame - 1 if frame > lo else None), frame
        equal = dense_hi
        lo = dense_hi + 1
    frames = sorted({f for f in (*a.recorded_chains, *b.recorded_chains) if lo <= f <= hi})
    if a.base is not None and lo <= min(ca.valid_until, hi):
        frames = sorted(set(frames) | set(range(lo, min(ca.valid_until, hi) + 1)))
    if b.base is not None and lo <= min(cb.valid_until, hi):
        frames = sorted(set(frames) | set(range(lo, min(cb.valid_until, hi) + 1)))
    for frame in frames:
        x, y = known_chain(a, ca, frame), known_chain(b, cb, frame)
        if x is None or y is None:
            continue
        if x != y:
            return equal, frame
        equal = frame
    return equal, None


def _side_line(side: Side, check: Check) -> str:
    what = side.describe()
    span = f"frames {side.first_frame}..{side.end_frame}"
    if side.base is None:
        return f"{side.label}: {side.path} ({what}): {span}; nothing to re-simulate from (an old report)"
    if check.consistent:
        return (
            f"{side.label}: {side.path} ({what}): {span}; re-simulating its inputs reproduces all "
            f"{check.compared} recorded chains"
        )
    line = (
        f"{side.label}: {side.path} ({what}): {span}; its recorded chain of frame {check.first_bad} is not "
        f"what its own inputs give (last agreeing recorded frame: {check.last_good})"
    )
    return line + _model_phrase(check)


def _model_phrase(check: Check) -> str:
    model = check.model
    if model is None:
        return "; no one-unit change of one field explains it, so the departure lies in frames " + (
            f"{check.last_good + 1}..{check.first_bad}"
        )
    tail = "" if check.model_first_bad is None else f" up to frame {check.valid_until}"
    return f"; it departed exactly at frame {model.frame}: {_model_how(model)}{tail}"


def _model_how(model: Model) -> str:
    if model.source == "report":
        return (
            f"its report's state of frame {model.frame} reproduces its recorded chains; "
            f"there it has {model.describe_changes()}"
        )
    return (
        f"a change of {model.field} by {model.delta:+d} right after frame {model.frame} "
        "reproduces its recorded chains"
    )


def _side_json(side: Side, check: Check) -> dict[str, Any]:
    model = check.model
    return {
        "path": side.path,
        "replay": side.replay.path if side.replay is not None else None,
        "report": side.report_path,
        "first_frame": side.first_frame,
        "end_frame": side.end_frame,
        "truncated": bool(side.replay is not None and side.replay.truncated),
        "reproduces_recorded_chains": check.consistent if side.base is not None else None,
        "first_bad_frame": check.first_bad,
        "last_good_frame": check.last_good if side.base is not None else None,
        "departure": (
            {
                "frame": model.frame,
                "source": model.source,
                "field": model.field,
                "delta": model.delta or None,
                "changes": [{"field": n, "resimulated": p, "real": r} for n, p, r in model.changes],
            }
            if model is not None
            else None
        ),
        "notes": side.notes,
    }


def compare(a: Side, ca: Check, b: Side, cb: Check) -> Verdict:
    header = _header_diff(a, b)
    if header:
        verdict = Verdict(True, 0, "header", True, (0, 0), None, 0, header)
        verdict.state_a = initial_state(a.rules, a.seed)
        verdict.state_b = initial_state(b.rules, b.seed)
        names = ", ".join(item["field"] for item in header)
        verdict.lines.append(f"the recordings are of different matches ({names}): they differ from frame 0")
        return verdict
    lo = max(a.first_frame, b.first_frame)
    hi = min(a.end_frame, b.end_frame)
    if lo > hi:
        raise _unreadable(
            f"nothing to compare: A holds frames {a.first_frame}..{a.end_frame}, B frames "
            f"{b.first_frame}..{b.end_frame}"
        )
    verdict = Verdict(False, compared=(lo, hi))
    i = _first_input_diff(a, b, lo + 1, hi)
    equal, d = _first_chain_diff(a, ca, b, cb, lo, hi)
    if i is None and d is None:
        verdict.lines.append(f"no divergence: the two games agree on every frame both hold ({lo}..{hi})")
        if not ca.consistent and not cb.consistent:
            verdict.lines.append(
                "but neither reproduces its own recorded chains with this build (see above): both "
                "departed from their inputs the same way (recorded by another build?)"
            )
        return verdict
    verdict.diverged = True
    verdict.input_frame = i
    if i is not None and (d is None or i <= d):
        verdict.first_frame, verdict.kind, verdict.exact = i, "inputs", True
        verdict.frame_range = (i, i)
        verdict.lines.append(f"the inputs differ first at frame {i}")
        if d is not None and d > i:
            verdict.lines.append(f"the states stay equal until frame {d}")
    else:
        assert d is not None
        low = (equal + 1) if equal is not None else lo
        verdict.first_frame, verdict.kind = d, "chain"
        verdict.exact = equal is not None and equal == d - 1
        verdict.frame_range = (low, d)
        if verdict.exact:
            where = f"at frame {d}"
        elif equal is None:
            where = f"at or before frame {d}, the first frame both recordings show"
        else:
            where = f"in frames {low}..{d} (first seen at frame {d})"
        who = [s.label for s, c in ((a, ca), (b, cb)) if s.base is not None and not c.consistent]
        because = ""
        if len(who) == 1:
            because = f": {who[0]}'s game departed from what its own inputs give"
        verdict.lines.append(f"with the same inputs, the games diverged {where}{because}")
    diff_frame = d if d is not None else i
    verdict.diff_frame = diff_frame
    if diff_frame is not None:
        verdict.state_a = state_of(a, ca, diff_frame)
        verdict.state_b = state_of(b, cb, diff_frame)
        verdict.diff = _state_diff(verdict.state_a, verdict.state_b)
        for s, label in ((verdict.state_a, "A"), (verdict.state_b, "B")):
            if s is None:
                verdict.lines.append(
                    f"{label}'s state at frame {diff_frame} is not known (its recorded chain differs "
                    f"and no report or one-unit change reproduces it): no field diff"
                )
    return verdict


def check_alone(side: Side, check: Check) -> Verdict:
    if side.base is None:
        raise _unreadable(f"{side.path}: an old report without recent frames: nothing to re-simulate")
    verdict = Verdict(not check.consistent, compared=(side.first_frame, side.end_frame))
    if check.consistent:
        verdict.lines.append(
            f"no divergence: this build reproduces all {check.compared} recorded chains from the inputs"
        )
        return verdict
    bad = check.first_bad
    assert bad is not None
    replay = side.replay
    if replay is not None:
        frames = [f for f, _ in replay.checkpoints]
        chunk = next((k for k, f in enumerate(frames) if f >= bad), len(frames) - 1)
        start = frames[chunk - 1] + 1 if chunk > 0 else 1
        verdict.lines.append(
            f"chunk {chunk} (frames {start}..{frames[chunk]}) is the first whose recorded chain this build "
            f"does not reproduce; the {chunk} chunk(s) before it agree. The inputs no longer give the "
            "recorded game: it was recorded by a different build (same SIM_VERSION, different behaviour), "
            "or its game was perturbed (--debug-desync-at) or corrupted in memory"
        )
    model = check.model
    verdict.kind = "chain"
    if model is not None:
        verdict.first_frame, verdict.exact, verdict.frame_range = (
            model.frame,
            True,
            (model.frame, model.frame),
        )
        verdict.lines.append(f"it departed exactly at frame {model.frame}: {_model_how(model)}")
    else:
        verdict.first_frame, verdict.frame_range = bad, (check.last_good + 1, bad)
        verdict.lines.append(f"the departure lies in frames {check.last_good + 1}..{bad}")
    frame = verdict.first_frame
    assert frame is not None
    verdict.diff_frame = frame
    verdict.state_a = state_of(side, check, frame) if model is not None else side.recorded_states.get(frame)
    _, plain = simulate(side, upto=frame, want=(frame,))
    verdict.state_b = plain.get(frame)
    verdict.diff = _state_diff(verdict.state_a, verdict.state_b)
    if verdict.state_a is None:
        verdict.lines.append(f"the recorded state at frame {frame} is not known: no field diff")
    return verdict


# -- output ---------------------------------------------------------------------------------------


_KEY_SYMBOLS = "-UD="  # none, up, down, both (= stay)


def _keys(value: int | None) -> str:
    if value is None:
        return "  ?  "
    left, right = unpack(value)
    return f"L{_KEY_SYMBOLS[left]} R{_KEY_SYMBOLS[right]}"


def _inputs_around(sides: Sequence[Side], frame: int) -> list[dict[str, Any]]:
    lo = max(min(s.input_start for s in sides), frame - INPUTS_BEFORE)
    hi = min(max(s.input_end for s in sides), frame + INPUTS_AFTER)
    rows = []
    for f in range(lo, hi + 1):
        row: dict[str, Any] = {"frame": f}
        for s in sides:
            row[s.label.lower()] = s.input_at(f)
        rows.append(row)
    return rows


def _table(verdict: Verdict, labels: tuple[str, str]) -> list[str]:
    if not verdict.diff:
        return []
    out = [f"  {'field':<12} {labels[0]:>22} {labels[1]:>22} {'b - a':>10}"]
    for item in verdict.diff:
        a, b = item["a"], item["b"]
        out.append(f"  {item['field']:<12} {a!s:>22} {b!s:>22} {b - a:>+10}")
    return out


def run(args: argparse.Namespace) -> int:
    png = args.png
    if png is not None:
        directory = os.path.dirname(os.path.abspath(png))
        if not os.path.isdir(directory):
            raise _unreadable(f"cannot write {png}: directory {directory} does not exist")
        if os.path.isdir(png):
            raise _unreadable(f"cannot write {png}: it is a directory")
    a = load_side("A", args.a)
    sides = [a]
    if args.b is not None:
        sides.append(load_side("B", args.b))
    try:
        checks = [check_side(s) for s in sides]
    except (ValueError, ArithmeticError, IndexError) as exc:  # a report's state beyond the rules
        raise _unreadable(f"cannot re-simulate the recordings: {exc}") from None
    lines = [_side_line(s, c) for s, c in zip(sides, checks)]
    for s in sides:
        lines += [f"  note: {note}" for note in s.notes]
    if len(sides) == 2:
        verdict = compare(sides[0], checks[0], sides[1], checks[1])
        labels = ("A", "B")
    else:
        verdict = check_alone(a, checks[0])
        labels = ("recorded (A)", "re-simulated")
    lines += verdict.lines
    inputs: list[dict[str, Any]] = []
    if verdict.diverged and verdict.first_frame:
        inputs = _inputs_around(sides, verdict.first_frame)
    if verdict.diff:
        lines.append(f"the states at frame {verdict.diff_frame}, field by field:")
        lines += _table(verdict, labels)
    elif verdict.diverged and verdict.state_a is not None and verdict.state_b is not None:
        lines.append(f"the states at frame {verdict.diff_frame} are equal field by field")
    if inputs:
        lines.append("inputs around it (L left player, R right player: U up, D down, - none, = both):")
        for row in inputs:
            marks = "   ".join(f"{s.label}: {_keys(row[s.label.lower()])}" for s in sides)
            differs = len(sides) == 2 and None not in (row["a"], row["b"]) and row["a"] != row["b"]
            lines.append(f"  frame {row['frame']:>8}  {marks}{'   <- differ' if differs else ''}")
    png_path = None
    if png is not None:
        png_path = draw_png(png, sides, checks, verdict, labels)
        lines.append(f"picture: {png_path}")
    for line in lines:
        print(line, flush=True)
    if not verdict.diverged:
        summary = "no divergence"
    elif verdict.kind == "header":
        summary = "diverged at frame 0: different matches"
    else:
        fields = ", ".join(item["field"] for item in verdict.diff) or "fields not known"
        low, high = verdict.frame_range or (verdict.first_frame, verdict.first_frame)
        how = "exactly" if verdict.exact else f"within frames {low}..{high}"
        summary = f"diverged at frame {verdict.first_frame} ({verdict.kind}, {how}): {fields}"
    report(
        summary,
        {
            "diverged": verdict.diverged,
            "first_frame": verdict.first_frame,
            "diff": verdict.diff,
            "diff_frame": verdict.diff_frame,
            "state_a": verdict.state_a.as_dict() if verdict.state_a is not None else None,
            "state_b": verdict.state_b.as_dict() if verdict.state_b is not None else None,
            "kind": verdict.kind,
            "exact": verdict.exact,
            "frame_range": list(verdict.frame_range) if verdict.frame_range else None,
            "input_frame": verdict.input_frame,
            "compared_frames": list(verdict.compared) if verdict.compared else None,
            "inputs": inputs,
            "mode": "pair" if len(sides) == 2 else "single",
            "a": _side_json(sides[0], checks[0]),
            "b": _side_json(sides[1], checks[1]) if len(sides) == 2 else None,
            "explanation": verdict.lines,
            "png": png_path,
        },
        args.json,
    )
    return exitcodes.CHECK_FAILED if verdict.diverged else exitcodes.OK


# -- the picture ----------------------------------------------------------------------------------

PANEL_W, PANEL_H = 480, 360
PAD = 12
TITLE_H = 54  # title and the line under it
CAPTION_H = 24
ROW_H = 18
BG = (16, 16, 20)
TEXT = (225, 225, 225)
DIM = (150, 150, 150)
RED = (255, 40, 40)
GHOST = (60, 160, 255)
MISSING = (48, 48, 56)
LABEL_BG = (40, 0, 0)
VELOCITY_FRAMES = 8  # velocity arrows show where the ball is this many frames later

_BALL_FIELDS = ("ball_x", "ball_y", "ball_vx", "ball_vy")
_OBJECT_FIELDS = ("paddle_l", "paddle_r", "score_l", "score_r")

Rect = tuple[int, int, int, int]


def _object_of(name: str) -> str | None:
    """The object on screen a state field belongs to; None for the invisible ones (rng, ...)."""
    if name in _BALL_FIELDS:
        return "ball"
    return name if name in _OBJECT_FIELDS else None


def _objects(rules: Rules, state: State, layout: Any) -> dict[str, Rect]:
    """Pixel rectangles of the paddles, the ball and the two scores, as draw_state draws them."""
    from replay.render import ball_rect, paddle_rects

    left, right = paddle_rects(rules, state)
    rects = {
        "paddle_l": layout.rect(*left),
        "paddle_r": layout.rect(*right),
        "ball": layout.rect(*ball_rect(rules, state)),
    }
    # The seven-segment score digits (replay.render.draw_state / draw_number).
    digit_h = max(5, layout.height // 8)
    centre = layout.left + layout.width // 2
    gap = max(4, layout.width // 24)
    top = layout.top + max(2, layout.height // 24)
    for name, value, right_aligned in (("score_l", state.score_l, True), ("score_r", state.score_r, False)):
        count = len(str(max(0, value)))
        width = count * max(3, digit_h // 2) + (count - 1) * max(1, digit_h // 5)
        x = centre - gap - width if right_aligned else centre + gap
        rects[name] = (x, top, width, digit_h)
    return rects


def _label(surface: pygame.Surface, text: str, x: int, y: int, size: int = 17) -> None:
    """Red text on a dark backing, kept inside the surface."""
    import pygame

    from replay.render import draw_text

    scratch = pygame.Surface((surface.get_width(), size + 4), pygame.SRCALPHA)
    width = draw_text(scratch, text, 0, 0, size, RED)
    if not width:
        return
    x = max(2, min(x, surface.get_width() - width - 4))
    y = max(2, min(y, surface.get_height() - size - 2))
    surface.fill(LABEL_BG, pygame.Rect(x - 3, y - 2, width + 6, size + 1))
    surface.blit(scratch, (x, y), pygame.Rect(0, 0, width, size + 4))


def _draw_panel(
    surface: pygame.Surface,
    rules: Rules,
    state: State | None,
    other: State | None,
    names: tuple[str, str],
    diff: list[dict[str, Any]],
    key: str,
) -> None:
    """One court: the state, each differing object outlined in red with its values, the other
    side's position of it as a thin blue outline, and the ball's velocity when it differs."""
    import pygame

    from replay.render import draw_state, draw_text

    if state is None:
        surface.fill(MISSING)
        draw_text(surface, "state not known at this frame", 16, surface.get_height() // 2 - 12, 24, TEXT)
        return
    layout = draw_state(surface, rules, state, names)
    marked: dict[str, list[str]] = {}
    for item in diff:
        obj = _object_of(item["field"])
        if obj is not None:
            marked.setdefault(obj, []).append(f"{item['field']} {item[key]}")
    mine = _objects(rules, state, layout)
    theirs = _objects(rules, other, layout) if other is not None else {}
    for obj, labels in marked.items():
        if obj in theirs and theirs[obj] != mine[obj]:
            pygame.draw.rect(surface, GHOST, pygame.Rect(theirs[obj]).inflate(4, 4), 1)
        box = pygame.Rect(mine[obj]).inflate(16, 16)
        pygame.draw.rect(surface, RED, box, 3)
        if obj == "ball" and any(f in ("ball_vx", "ball_vy") for f in (i["field"] for i in diff)):
            for s, colour in ((other, GHOST), (state, RED)):
                if s is not None:
                    start = (
                        layout.x(s.ball_x + rules.ball_size // 2),
                        layout.y(s.ball_y + rules.ball_size // 2),
                    )
                    end = (
                        layout.x(s.ball_x + rules.ball_size // 2 + VELOCITY_FRAMES * s.ball_vx),
                        layout.y(s.ball_y + rules.ball_size // 2 + VELOCITY_FRAMES * s.ball_vy),
                    )
                    pygame.draw.line(surface, colour, start, end, 2)
        below = box.bottom + 3 + 18 * len(labels) < surface.get_height()
        y = box.bottom + 3 if below else box.top - 3 - 18 * len(labels)
        for n, text in enumerate(labels):
            _label(surface, text, box.left, y + 18 * n)
    hidden = [item for item in diff if _object_of(item["field"]) is None]
    if hidden:  # fields with no object of their own (rng, serve_timer, ...): a frame round the court
        pygame.draw.rect(surface, RED, pygame.Rect(layout.left, layout.top, layout.width, layout.height), 2)
        text = ", ".join(f"{item['field']} {item[key]}" for item in hidden)
        _label(surface, text, layout.left + 8, layout.top + layout.height - 24)


def _titles(sides: Sequence[Side], checks: Sequence[Check], verdict: Verdict) -> tuple[str, str]:
    fields = ", ".join(item["field"] for item in verdict.diff)
    frame = verdict.first_frame
    legend = "red: differs, blue: the other side's position"
    if not verdict.diverged:
        return "no divergence", f"the states at frame {verdict.diff_frame} are equal"
    if verdict.kind == "header":
        return f"different matches: {fields} differ", "they differ from frame 0"
    low, high = verdict.frame_range or (frame, frame)
    what = (
        "A and B diverge" if len(sides) == 2 else f"{os.path.basename(sides[0].path)} departs from its inputs"
    )
    title = f"{what} at frame {frame}: {fields or 'states not known'}"
    if not verdict.exact:
        title = f"{what} between frames {low} and {high}: {fields or 'no field diff'}"
    if verdict.kind == "inputs":
        return title, f"the inputs differ at frame {verdict.input_frame}.  {legend}"
    who = []
    for side, check in zip(sides, checks):
        model = check.model
        if side.base is None or check.consistent:
            continue
        name = f"{side.label}'s game" if len(sides) == 2 else "the recorded game"
        if model is None:
            who.append(f"{name} left its inputs in frames {check.last_good + 1}..{check.first_bad}")
        else:
            how = "found by search" if model.source == "search" else "from its report"
            who.append(
                f"{name} left its inputs right after frame {model.frame}: {model.describe_changes()}, {how}"
            )
    sub = "; ".join(who) or "the recorded chains differ"
    return title, f"{sub}.  {legend}"


def draw_png(
    out: str, sides: Sequence[Side], checks: Sequence[Check], verdict: Verdict, labels: tuple[str, str]
) -> str:
    """Both states side by side, differing objects marked, the diff below; returns the path."""
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    try:
        import pygame

        from replay.render import draw_text
    except ImportError as exc:
        raise _unreadable(f"cannot draw {out}: pygame is not available ({exc})") from None

    diff = verdict.diff if verdict.diverged else []
    width = 2 * PANEL_W + 3 * PAD
    height = TITLE_H + CAPTION_H + PANEL_H + PAD + (max(1, len(diff)) + 1) * ROW_H + PAD
    surface = pygame.Surface((width, height))
    surface.fill(BG)
    title, sub = _titles(sides, checks, verdict)
    draw_text(surface, title, PAD, 6, 26, RED if verdict.diverged else TEXT)
    draw_text(surface, sub, PAD, 32, 18, DIM)
    frame = verdict.diff_frame
    pair = len(sides) == 2
    if pair:
        panels = [
            (s.label, os.path.basename(s.path), s.rules, s.names, s.base is not None and not c.consistent)
            for s, c in zip(sides, checks)
        ]
    else:
        s = sides[0]
        panels = [
            ("recorded", os.path.basename(s.path), s.rules, s.names, True),
            ("re-simulated", "by this build", s.rules, s.names, False),
        ]
    states = (verdict.state_a, verdict.state_b)
    for n, (label, name, rules, names, departed) in enumerate(panels):
        left = PAD + n * (PANEL_W + PAD)
        shown = draw_text(surface, f"{label}  {name}  frame {frame}", left, TITLE_H + 3, 20, TEXT)
        if departed and verdict.diverged and verdict.kind == "chain":
            draw_text(surface, "departed from its inputs", left + shown + 16, TITLE_H + 3, 20, RED)
        panel = surface.subsurface(pygame.Rect(left, TITLE_H + CAPTION_H, PANEL_W, PANEL_H))
        _draw_panel(panel, rules, states[n], states[1 - n], names, diff, "ab"[n])
    y = TITLE_H + CAPTION_H + PANEL_H + PAD
    columns = (PAD, PAD + 170, PAD + 420, PAD + 670)
    for x, text in zip(columns, ("field", labels[0], labels[1], "b - a")):
        draw_text(surface, text, x, y, 18, DIM)
    draw_text(surface, "positions and speeds in 1/256 px", width - PAD, y, 18, DIM, "right")
    if not diff:
        known = verdict.state_a is not None and verdict.state_b is not None
        draw_text(surface, "the states are equal" if known else "no field diff", PAD, y + ROW_H, 18, TEXT)
    for n, item in enumerate(diff, start=1):
        a, b = item["a"], item["b"]
        for x, text in zip(columns, (item["field"], str(a), str(b), f"{b - a:+d}")):
            draw_text(surface, text, x, y + n * ROW_H, 18, RED)
    try:
        pygame.image.save(surface, out)
    except (pygame.error, OSError) as exc:
        raise _unreadable(f"cannot write {out}: {exc}") from None
    return out
