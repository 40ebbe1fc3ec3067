"""The desync report: what one peer knows about a divergence, as JSON next to its replay.

`pong desync` reads two of these (or two replays) to show, field by field, what went wrong.
"""

from __future__ import annotations

import json
import os
import platform
from typing import Any

from lockstep.engine import DesyncDetected
from lockstep.rules import SIM_VERSION
from lockstep.state import State
from peer.match import MatchPeer
from peer.messages import PROTOCOL_VERSION

REPORT_FORMAT = 1
INPUT_HISTORY_FRAMES = 10


def _state(state: State | None) -> dict[str, int] | None:
    return state.as_dict() if state is not None else None


def desync_report(peer: MatchPeer, desync: DesyncDetected, replay_path: str) -> dict[str, Any]:
    engine = peer.engine
    est = peer.established
    assert engine is not None and est is not None
    frame = desync.frame
    return {
        "report_format": REPORT_FORMAT,
        "kind": "lockstep-pong desync report",
        "frame": frame,
        "local_chain": desync.local.hex(),
        "remote_chain": desync.remote.hex(),
        "remote_chain_bits": desync.remote_bits,
        "last_agreed_frame": engine.last_agreed_frame,
        "state_last_agreed": _state(engine.state_at(frame - 1)),
        "state_first_divergent": _state(engine.state_at(frame)),
        "recent_inputs": [
            {"frame": f, "input": value} for f, value in engine.inputs_before(frame, INPUT_HISTORY_FRAMES)
        ],
        "slot": est.local_slot,
        "seed": est.seed,
        "input_delay": est.delay_frames,
        "rules": {name: getattr(est.rules, name) for name in est.rules.__dataclass_fields__},
        "replay": os.path.basename(replay_path),
        "versions": {
            "sim": SIM_VERSION,
            "protocol": PROTOCOL_VERSION,
            "python": platform.python_version(),
            "implementation": platform.python_implementation(),
        },
    }


def report_path(replay_path: str, frame: int) -> str:
    return os.path.join(os.path.dirname(os.path.abspath(replay_path)), f"desync-{frame}.json")


def write_desync_report(replay_path: str, peer: MatchPeer, desync: DesyncDetected) -> str | None:
    """Write the report; returns its path, or None when it could not be written (never raises)."""
    path = report_path(replay_path, desync.frame)
    try:
        with open(path, "w", encoding="utf-8") as file:
            json.dump(desync_report(peer, desync, replay_path), file, indent=2, sort_keys=True)
            file.write("\n")
    except OSError:
        return None
    return path
