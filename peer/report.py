"""The desync report: its schema in one place, the writer (a peer) and the reader (`pong desync`).

What one peer knows about a divergence, as JSON next to its replay. Written by the session when a
match ends with `desync` (either side: the one that caught the mismatch and the one its peer told);
`pong desync` reads two of these (or two replays, finding the reports next to them) to show, field
by field, what went wrong. Everything a developer needs without the replay is in it:

- `frame`: the frame whose chain check failed (the first frame known to differ; never past the
  last frame this peer simulated), `local_chain` there, `remote_chain` (the peer's full 8 bytes,
  or its low `remote_chain_bits` bits when a per-input check caught it) of `remote_frame` (the
  frame the peer named: `frame`, unless it named one this peer never reached), `detected_by`
  (`local`: this side caught it; `peer`: the peer did);
- `last_agreed_frame` (the latest frame the peer confirmed; -1 before any) and the full state at
  `state_last_agreed_frame` (the last agreed frame, at most `frame - 1`) and at `frame`
  (`state_first_divergent`);
- `recent_frames`: for each of the last few frames up to the last one simulated, the frame, the
  packed input of the step that led to it (replay numbering: the input of frame f turns state
  f - 1 into state f), the chain and the full state;
- the match (`seed`, `rules`, `input_delay`, `slot`, `role`, `names`), the replay's file name and
  `versions` (simulation, protocol, replay format, Python).

The file is `desync-<frame>.json` in the replay's directory. Two peers recording into the same
directory (a test, `pong selfplay`) stop at the same frame, so the second one to write takes
`desync-<frame>-<replay name>.json` instead of overwriting the first: files are created
exclusively, never replaced. Writing is best-effort: a report never takes the session down.

Layering: this module is the one definition of the format, so the writer and `parse_report` live
side by side. `tools/desync.py` imports it for the reader; to keep that start-up light, the peer
and engine types (peer.match pulls in the protocol and the engine) are imported for type
checking only, and the protocol version when a report is written.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lockstep.chain import CHAIN_SIZE
from lockstep.codec import encode
from lockstep.game import Snapshot
from lockstep.rules import SIM_VERSION, Rules, RulesError
from lockstep.state import FIELDS, State
from replay.format import FORMAT_VERSION

if TYPE_CHECKING:
    from lockstep.engine import DesyncDetected
    from lockstep.rollback import AnyEngine
    from peer.match import MatchPeer

REPORT_FORMAT = 2
REPORT_KIND = "lockstep-pong desync report"
INPUT_HISTORY_FRAMES = 10  # frames before the divergent one in `recent_frames`
MAX_RECENT_FRAMES = 48  # bound on `recent_frames` (the engine may have run on a little past it)
MAX_FRAME = (1 << 63) - 1  # the largest frame number a report may hold
MAX_NAME_CHARS = 255  # longer names are cut when read (a replay holds 255 bytes)


# -- writing ------------------------------------------------------------------------------------


def _state(state: State | None) -> dict[str, int] | None:
    return state.as_dict() if state is not None else None


def _state_at(engine: AnyEngine, frame: int) -> State | None:
    """The state of `frame` from the engine's history: its Pong game's snapshot."""
    snapshot = engine.snapshot_at(frame)
    return snapshot.state if isinstance(snapshot, Snapshot) else None


def _recent_frames(engine: AnyEngine, first: int, last: int) -> list[dict[str, Any]]:
    frames: list[dict[str, Any]] = []
    for f in range(first, last + 1):
        chain = engine.chain_at(f)
        state = _state_at(engine, f)
        if chain is None or state is None:
            continue
        step = engine.inputs_before(f, 1) if f > 0 else []
        frames.append(
            {
                "frame": f,
                "input": step[0][1] if step and step[0][0] == f - 1 else None,
                "chain": chain.hex(),
                "state": state.as_dict(),
            }
        )
    return frames


def _oldest_kept(engine: AnyEngine) -> int:
    """The oldest frame whose chain the engine still holds (it keeps a bounded history)."""
    frame = engine.frame
    while frame > 0 and engine.chain_at(frame - 1) is not None:
        frame -= 1
    return frame


def desync_report(peer: MatchPeer, desync: DesyncDetected, replay_path: str) -> dict[str, Any]:
    """The report as a JSON-ready dict. Its `frame` is the desync's, clamped to the frames this
    peer still holds: a peer's desync goodbye may name any frame, even one we never reached."""
    from peer.messages import PROTOCOL_VERSION  # here: the reader (`pong desync`) never needs it

    engine = peer.engine
    est = peer.established
    assert engine is not None and est is not None
    frame = max(_oldest_kept(engine), min(desync.frame, engine.frame))
    local = desync.local
    if frame != desync.frame:  # a frame we do not have: our real chain at the frame reported
        local = engine.chain_at(frame) or local
    agreed = engine.last_agreed_frame
    # The state the peers last agreed on; never at or after the frame that failed.
    before = max(0, min(agreed, frame - 1))
    first = max(0, frame - INPUT_HISTORY_FRAMES)  # the window always holds `frame` and the one before
    last = min(engine.frame, first + MAX_RECENT_FRAMES - 1)
    outcome = peer.outcome
    names = est.names
    return {
        "report_format": REPORT_FORMAT,
        "kind": REPORT_KIND,
        "frame": frame,
        "detected_by": "peer" if outcome is not None and outcome.by_remote else "local",
        "local_chain": local.hex(),
        "remote_chain": desync.remote.hex(),
        "remote_frame": desync.frame,
        "remote_chain_bits": desync.remote_bits,
        "last_agreed_frame": agreed,
        "state_last_agreed_frame": before,
        "state_last_agreed": _state(_state_at(engine, before)),
        "state_first_divergent": _state(_state_at(engine, frame)),
        "frames_simulated": engine.frame,
        "recent_frames": _recent_frames(engine, first, last),
        "slot": est.local_slot,
        "role": peer.connection.role.value,
        "names": list(names),
        "seed": est.seed,
        "input_delay": est.delay_frames,
        "rules": {name: getattr(est.rules, name) for name in est.rules.__dataclass_fields__},
        "replay": os.path.basename(replay_path),
        "versions": {
            "sim": SIM_VERSION,
            "protocol": PROTOCOL_VERSION,
            "replay_format": FORMAT_VERSION,
            "python": platform.python_version(),
            "implementation": platform.python_implementation(),
        },
    }


def _candidates(replay_path: str, frame: int) -> list[str]:
    directory = os.path.dirname(os.path.abspath(replay_path))
    stem = os.path.splitext(os.path.basename(replay_path))[0] or "replay"
    names = [f"desync-{frame}.json", f"desync-{frame}-{stem}.json"]
    names += [f"desync-{frame}-{stem}-{n}.json" for n in range(2, 10)]
    return [os.path.join(directory, name) for name in names]


def _create(paths: list[str], text: str) -> str | None:
    """Write `text` into the first of `paths` that does not exist yet; None when all do."""
    for path in paths:
        try:
            file = open(path, "x", encoding="utf-8")  # noqa: SIM115 (closed below, removed on failure)
        except FileExistsError:
            continue
        try:
            with file:
                file.write(text)
        except BaseException:
            with contextlib.suppress(OSError):
                os.remove(path)
            raise
        return path
    return None


def write_desync_report(replay_path: str, peer: MatchPeer, desync: DesyncDetected) -> str | None:
    """Write the report; returns its path, or None when it could not be written (never raises).

    The file is created exclusively: an existing report (the peer's, written into the same
    directory a moment ago) is never overwritten; the next free name is taken instead.
    """
    try:
        report = desync_report(peer, desync, replay_path)
        text = json.dumps(report, indent=2, sort_keys=True) + "\n"
        return _create(_candidates(replay_path, report["frame"]), text)
    except Exception:  # best-effort: a report must never take the session down
        return None


# -- reading ------------------------------------------------------------------------------------


class ReportError(ValueError):
    """A file that is not a usable desync report; the message names the file and what is wrong."""


@dataclass(frozen=True)
class ParsedReport:
    """A desync report's contents, validated, in replay numbering (the input of frame f turns
    state f - 1 into state f). `inputs` are the consecutive inputs from `input_start` on;
    `base_frame` is the first frame whose state and chain are both known (where a re-simulation
    can start; None when the report holds no recent frames)."""

    path: str
    frame: int
    seed: int
    rules: Rules
    names: tuple[str, str]
    replay_name: str
    base_frame: int | None
    input_start: int
    inputs: bytes
    chains: dict[int, bytes]
    states: dict[int, State]
    sim_version: int | None


def parse_report(path: str, data: Any) -> ParsedReport:
    """A desync report's contents (`data`: the decoded JSON), validated; raises ReportError."""

    def bad(what: str) -> ReportError:
        return ReportError(f"{path}: not a usable desync report: {what}")

    def integer(obj: Any, key: str, where: str = "") -> int:
        value = obj.get(key) if isinstance(obj, dict) else None
        if type(value) is not int:
            raise bad(f"{where}{key!r} must be an integer")
        return value

    def frame_number(obj: Any, key: str, where: str = "") -> int:
        value = integer(obj, key, where)
        if not 0 <= value <= MAX_FRAME:  # any real frame; never a number too long to print
            raise bad(f"{where}{key!r} must be a frame number, 0..{MAX_FRAME}")
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
    frame = frame_number(data, "frame")
    seed = integer(data, "seed")
    if not 0 <= seed < 1 << 64:
        raise bad("'seed' out of range")
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
        names = (names_value[0][:MAX_NAME_CHARS], names_value[1][:MAX_NAME_CHARS])
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
    for entry in recent or []:
        f = frame_number(entry, "frame", "recent_frames: ")
        chains[f] = chain(entry.get("chain"), f"the chain of frame {f}")
        states[f] = state(entry.get("state"), f"the state of frame {f}")
        if states[f].frame != f:
            raise bad(f"the state listed for frame {f} is the state of frame {states[f].frame}")
        value = entry.get("input")
        if value is not None:
            if type(value) is not int or not 0 <= value <= 15:
                raise bad(f"the input of frame {f} must be 0..15")
            inputs[f] = value
    for key, at in (("state_last_agreed", None), ("state_first_divergent", frame)):
        value = data.get(key)
        if value is not None:
            s = state(value, f"{key!r}")
            if at is None or s.frame == at:
                states.setdefault(s.frame, s)
    if frame in states and frame not in chains:
        chains[frame] = chain(data.get("local_chain"), "'local_chain'")

    base_frame = None
    input_start = frame + 1
    if recent:
        base_frame = min(f for f in states if f in chains)
        input_start = base_frame + 1
    values = bytearray()
    while input_start + len(values) in inputs:
        values.append(inputs[input_start + len(values)])
    return ParsedReport(
        path=path,
        frame=frame,
        seed=seed,
        rules=rules,
        names=names,
        replay_name=replay_name,
        base_frame=base_frame,
        input_start=input_start,
        inputs=bytes(values),
        chains=chains,
        states=states,
        sim_version=sim_version if type(sim_version) is int and 0 <= sim_version < 1 << 32 else None,
    )
