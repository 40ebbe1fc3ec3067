"""The desync report: what one peer knows about a divergence, as JSON next to its replay.

Written by the session when a match ends with `desync` (either side: the one that caught the
mismatch and the one its peer told). `pong desync` reads two of these (or two replays, finding
the reports next to them) to show, field by field, what went wrong. Everything a developer needs
without the replay is in it:

- `frame`: the frame whose chain check failed (the first frame known to differ), `local_chain`
  and `remote_chain` there (the peer's full 8 bytes, or its low `remote_chain_bits` bits when a
  per-input check caught it), `detected_by` (`local`: this side caught it; `peer`: the peer did);
- `last_agreed_frame` (the latest frame the peer confirmed; -1 before any) and the full state at
  `state_last_agreed_frame` (the last agreed frame, at most `frame - 1`) and at `frame`
  (`state_first_divergent`);
- `recent_frames`: for each of the last few frames up to the last one simulated, the frame, the
  packed input of the step that led to it (replay numbering: the input of frame f turns state
  f - 1 into state f), the chain and the full state. `recent_inputs` is the older, engine-numbered
  list ({frame: f, input} is the input of the step from f to f + 1), kept for compatibility;
- the match (`seed`, `rules`, `input_delay`, `slot`, `role`, `names`), the replay's file name and
  `versions` (simulation, protocol, replay format, Python).

The file is `desync-<frame>.json` in the replay's directory. Two peers recording into the same
directory (a test, `pong selfplay`) stop at the same frame, so the second one to write takes
`desync-<frame>-<replay name>.json` instead of overwriting the first: files are created
exclusively, never replaced.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
from typing import Any

from lockstep.engine import DesyncDetected, Engine
from lockstep.rules import SIM_VERSION
from lockstep.state import State
from peer.match import MatchPeer
from peer.messages import PROTOCOL_VERSION
from replay.format import FORMAT_VERSION

REPORT_FORMAT = 2
REPORT_KIND = "lockstep-pong desync report"
INPUT_HISTORY_FRAMES = 10  # frames before the divergent one in `recent_inputs` / `recent_frames`
MAX_RECENT_FRAMES = 48  # bound on `recent_frames` (the engine may have run on a little past it)


def _state(state: State | None) -> dict[str, int] | None:
    return state.as_dict() if state is not None else None


def _recent_frames(engine: Engine, first: int, last: int) -> list[dict[str, Any]]:
    frames: list[dict[str, Any]] = []
    for f in range(first, last + 1):
        chain = engine.chain_at(f)
        state = engine.state_at(f)
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


def desync_report(peer: MatchPeer, desync: DesyncDetected, replay_path: str) -> dict[str, Any]:
    engine = peer.engine
    est = peer.established
    assert engine is not None and est is not None
    frame = desync.frame
    agreed = engine.last_agreed_frame
    # The state the peers last agreed on; never at or after the frame that failed.
    before = max(0, min(agreed, frame - 1))
    first = max(0, frame - INPUT_HISTORY_FRAMES)  # the window always holds `frame` and the one before
    last = min(engine.frame, first + MAX_RECENT_FRAMES - 1)
    outcome = peer.outcome
    names = (est.local_name, est.remote_name) if est.local_slot == 0 else (est.remote_name, est.local_name)
    return {
        "report_format": REPORT_FORMAT,
        "kind": REPORT_KIND,
        "frame": frame,
        "detected_by": "peer" if outcome is not None and outcome.by_remote else "local",
        "local_chain": desync.local.hex(),
        "remote_chain": desync.remote.hex(),
        "remote_chain_bits": desync.remote_bits,
        "last_agreed_frame": agreed,
        "state_last_agreed_frame": before,
        "state_last_agreed": _state(engine.state_at(before)),
        "state_first_divergent": _state(engine.state_at(frame)),
        "frames_simulated": engine.frame,
        "recent_frames": _recent_frames(engine, first, last),
        "recent_inputs": [
            {"frame": f, "input": value} for f, value in engine.inputs_before(frame, INPUT_HISTORY_FRAMES)
        ],
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


def report_path(replay_path: str, frame: int) -> str:
    """The preferred name: `desync-<frame>.json` next to the replay."""
    return os.path.join(os.path.dirname(os.path.abspath(replay_path)), f"desync-{frame}.json")


def _candidates(replay_path: str, frame: int) -> list[str]:
    directory = os.path.dirname(os.path.abspath(replay_path))
    stem = os.path.splitext(os.path.basename(replay_path))[0] or "replay"
    names = [f"desync-{frame}.json", f"desync-{frame}-{stem}.json"]
    names += [f"desync-{frame}-{stem}-{n}.json" for n in range(2, 10)]
    return [os.path.join(directory, name) for name in names]


def write_desync_report(replay_path: str, peer: MatchPeer, desync: DesyncDetected) -> str | None:
    """Write the report; returns its path, or None when it could not be written (never raises).

    The file is created exclusively: an existing report (the peer's, written into the same
    directory a moment ago) is never overwritten; the next free name is taken instead.
    """
    try:
        text = json.dumps(desync_report(peer, desync, replay_path), indent=2, sort_keys=True) + "\n"
    except (TypeError, ValueError):  # defensive: a report must never take the session down
        return None
    for path in _candidates(replay_path, desync.frame):
        try:
            with open(path, "x", encoding="utf-8") as file:
                try:
                    file.write(text)
                except OSError:
                    file.close()
                    with contextlib.suppress(OSError):
                        os.remove(path)
                    return None
        except FileExistsError:
            continue
        except OSError:
            return None
        return path
    return None
