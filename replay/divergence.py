"""Where two recordings of one match diverge: the analysis behind `pong desync`, without any I/O.

A *side* is one recording (a replay, a desync report, or both): its header (rules, seed), the
inputs it holds, the chains it recorded and the full states it recorded. This module re-simulates
sides, works out what each side's real game was, and compares two of them (or one against this
build). Reading files, finding a replay's report and printing are `tools/desync.py`'s job, the
picture `tools/desync_png.py`'s.

It lives in replay/ because it needs only the simulation and the replay reader (like verify.py,
of which it is the two-recording generalisation): a report's contents reach it already turned
into a `Side` by the tool, so it never imports peer/ (the layering `lockstep <- replay <- peer <-
tools`), and it can be tested on sides built in memory.

Frame numbering is the replay's: frame f is the state after f steps, and "the input of frame f"
is the packed input of the step that turned state f - 1 into state f (a replay's first input byte
is frame 1's). The chain of frame f certifies every state up to f.

The method
----------
1. Each side says what it holds. A replay gives the header, every frame's input and the recorded
   chain at each checkpoint (every 60 frames and the last frame). A report gives, for the frames
   around the divergence, the inputs, the chains and the full states the peer really had.

2. `check_side`: work out, for each side, what its real game was. Re-simulating a side's inputs
   gives the game those inputs make *with this build*; the recorded chains say what the peer
   really had. Where a recorded chain agrees with the re-simulation, the two games are the same up
   to that frame (the chain is cumulative). The first recorded chain that disagrees means the
   peer's game departed from its inputs somewhere after the last agreeing one: a perturbed run
   (`--debug-desync-at`), a different build, corrupted memory. A replay alone only narrows that to
   one chunk, so it is pinned down exactly, where possible, by
   - the report's full state at the first frame after the last agreeing one (its chain must
     follow from the re-simulated chain before it), or else
   - a search for a one-unit change (+1 or -1) of one state field right after one frame of that
     chunk which reproduces the recorded chain exactly (what `--debug-desync-at` does; 8-byte
     chains make a false match practically impossible: a found change is a proof, not a guess).
   The side's real game is then known at every frame up to the last recorded chain that this
   model reproduces, and at the recorded frames (and report states) beyond.

3. `compare`: different seeds or rules are a divergence at frame 0. Otherwise the first frame
   whose input differs, and the first frame where both real games are known and their chains
   differ, after the last frame where both are known and equal; when those two frames are
   adjacent the divergence is exact, else it lies in the range between them (`frame_range`).
   Only the frames both recordings hold are compared: a truncated recording never "differs" after
   its end. At that frame the two states are diffed field by field, where they are known.

With one recording, `check_alone`: step 2 is the whole answer. The first recorded checkpoint that
disagrees names the first bad chunk ("recorded by a different build"), and the exact frame and
field when the report or the search finds them; the diff is then recorded (a) against
re-simulated (b).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from lockstep.chain import CHAIN_SIZE, chain_next, chain_start
from lockstep.game import Game, Snapshot
from lockstep.rules import Rules
from lockstep.state import FIELDS, State, initial_state
from replay.reader import Replay

MAX_SEARCH_FRAMES = 240  # the one-unit-change search covers at most this many frames (4 chunks)
SEARCH_DELTAS = (-1, 1)


class DivergenceError(Exception):
    """The recordings cannot be compared at all (no common frames, nothing to re-simulate)."""


# -- sides (step 1) -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Base:
    """Where a side's re-simulation starts: a frame, its state and its chain."""

    frame: int
    state: State
    chain: bytes


@dataclass
class Side:
    """One recording: what it says (inputs, recorded chains and states) and where it came from."""

    label: str
    path: str
    rules: Rules
    seed: int
    names: tuple[str, str]
    base: Base | None  # None: nothing to re-simulate from (a report without recent frames)
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


def side_from_replay(label: str, path: str, replay: Replay) -> Side:
    """A replay as a side: every input from frame 1, the checkpoints and the footer's final chain."""
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


# -- re-simulation (step 2) ----------------------------------------------------------------------


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
    game = Game(side.rules, side.seed)
    game.restore(Snapshot(base.state, base.chain))
    out = bytearray(base.chain)
    inputs = side.inputs if upto is None else side.inputs[: max(0, upto - base.frame)]
    last = base.frame + len(inputs)
    wanted = {f for f in want if base.frame <= f <= last}
    change_at = model.frame if model is not None and base.frame < model.frame <= last else None
    states: dict[int, State] = {}
    if base.frame in wanted:
        states[base.frame] = game.state.copy()
    f = base.frame
    # Run between the frames where something happens (a state wanted, the model's change).
    for stop in sorted(wanted | ({change_at} if change_at is not None else set())):
        if stop == change_at:
            assert model is not None
            game.run(inputs[f - base.frame : stop - 1 - base.frame], out)
            # The real game departs here: after this frame's step its state is the model's.
            game.restore(Snapshot(model.state, chain_next(game.chain, model.state)))
            out += game.chain
        elif stop > f:
            game.run(inputs[f - base.frame : stop - base.frame], out)
        f = max(f, stop)
        if stop in wanted:
            states[stop] = game.state.copy()
    game.run(inputs[f - base.frame :], out)
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

    @property
    def departure_frames(self) -> tuple[int, int]:
        """The frames the departure lies in when no model pins it; (0, 0) when even the recorded
        start of the chain (rules id and seed) is not what the header gives."""
        assert self.first_bad is not None
        return min(self.last_good + 1, self.first_bad), self.first_bad


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
    game = Game(side.rules, side.seed)
    for frame in range(good + 1, bad + 1):
        prev = _chain_of(plain, base.frame, frame - 1)
        later = side.inputs[frame - side.input_start + 1 : bad - side.input_start + 1]
        for name in FIELDS:
            for delta in SEARCH_DELTAS:
                changed = states[frame].copy()
                setattr(changed, name, getattr(changed, name) + delta)
                try:
                    game.restore(Snapshot(changed, chain_next(prev, changed)))
                    chain = game.run(later)
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


# -- the verdict (step 3) ------------------------------------------------------------------------


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


def model_how(model: Model) -> str:
    """How a side's departure was found, in words."""
    if model.source == "report":
        return (
            f"its report's state of frame {model.frame} reproduces its recorded chains; "
            f"there it has {model.describe_changes()}"
        )
    return (
        f"a change of {model.field} by {model.delta:+d} right after frame {model.frame} "
        "reproduces its recorded chains"
    )


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
        raise DivergenceError(
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
        raise DivergenceError(f"{side.path}: a report without recent frames: nothing to re-simulate")
    verdict = Verdict(not check.consistent, compared=(side.first_frame, side.end_frame))
    if check.consistent:
        verdict.lines.append(
            f"no divergence: this build reproduces all {check.compared} recorded chains from the inputs"
        )
        return verdict
    bad = check.first_bad
    assert bad is not None
    replay = side.replay
    if replay is not None and replay.checkpoints:  # a replay of no frames has only its footer
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
        verdict.lines.append(f"it departed exactly at frame {model.frame}: {model_how(model)}")
    else:
        verdict.first_frame, verdict.frame_range = bad, check.departure_frames
        verdict.lines.append("the departure lies in frames {}..{}".format(*check.departure_frames))
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
