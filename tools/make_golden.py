"""Regenerate the golden replays in tests/data (run after bumping SIM_VERSION on purpose).

    python -m tools.make_golden            # rewrite tests/data/*.replay and golden_replays.json
    python -m tools.make_golden --check    # exit 1 if re-recording would change any file

The goldens are short bot-driven and scripted matches; `tests/test_replay_golden.py` verifies each
file, checks its final chain against `golden_replays.json`, and re-records the stored inputs to prove
the recorder still writes the same bytes. Changing a bot changes what this tool would record (so
`--check` reports it) but not the game: the existing goldens stay valid and need no regeneration.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from lockstep.rules import SIM_VERSION, UNIT, Rules
from lockstep.script import random_inputs
from replay.format import FORMAT_VERSION
from replay.matches import Recorded, record_bot_match, record_inputs

DATA_DIR = Path(__file__).resolve().parent.parent / "tests" / "data"
EXPECTED_FILE = "golden_replays.json"
CREATED_UNIX = 1_700_000_000  # metadata only; fixed so the files are byte-for-byte reproducible


@dataclass(frozen=True)
class Golden:
    name: str
    rules: Rules
    seed: int
    bots: tuple[str, str] | None = None  # a bot match, or else `random_inputs(seed, frames)`
    frames: int = 0
    input_delay: int = 0
    names: tuple[str, str] = ("left", "right")
    end_reason: str | None = "quit"  # scripted matches only; None leaves the file without a footer

    @property
    def filename(self) -> str:
        return f"{self.name}.replay"


GOLDENS = (
    Golden("tracker_vs_tracker", Rules(points_to_win=2), 3, bots=("tracker", "tracker"), input_delay=2),
    Golden("tracker_vs_random", Rules(points_to_win=3), 3, bots=("tracker", "random"), input_delay=3),
    Golden(
        "scripted_small_field",
        Rules(field_w=480 * UNIT, field_h=360 * UNIT, paddle_speed=8 * UNIT, frame_limit=1200),
        9,
        frames=1200,
        names=("Zoë", "Ülrich"),
        end_reason="finished",
    ),
    # A recording that stopped without a footer, as after a crash: 10 full chunks and a short one.
    Golden("crashed", Rules(), 5, frames=650, end_reason=None),
)


def record(golden: Golden, path: Path) -> Recorded:
    if golden.bots is not None:
        return record_bot_match(
            path,
            golden.rules,
            golden.seed,
            golden.bots,
            max_frames=20_000,
            input_delay=golden.input_delay,
            created_unix=CREATED_UNIX,
        )
    return record_inputs(
        path,
        golden.rules,
        golden.seed,
        random_inputs(golden.seed, golden.frames),
        input_delay=golden.input_delay,
        names=golden.names,
        created_unix=CREATED_UNIX,
        end_reason=golden.end_reason,
    )


def expected_entry(recorded: Recorded) -> dict[str, object]:
    return {
        "frames": recorded.frames,
        "final_chain": recorded.final_chain.hex(),
        "score": list(recorded.score),
        "end_reason": recorded.end_reason,
    }


def build(out_dir: Path) -> dict[str, object]:
    """Record every golden into `out_dir`; returns the expectations (the JSON document)."""
    matches = {g.name: expected_entry(record(g, out_dir / g.filename)) for g in GOLDENS}
    return {"sim_version": SIM_VERSION, "format_version": FORMAT_VERSION, "replays": matches}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.make_golden", description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="compare only; exit 1 if anything changed")
    parser.add_argument("--out", type=Path, default=DATA_DIR, help=f"directory (default {DATA_DIR})")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp)
        expected = build(fresh)
        text = json.dumps(expected, indent=2, sort_keys=True) + "\n"
        changed = []
        for golden in GOLDENS:
            old = args.out / golden.filename
            new_bytes = (fresh / golden.filename).read_bytes()
            if not old.exists() or old.read_bytes() != new_bytes:
                changed.append(golden.filename)
                if not args.check:
                    args.out.mkdir(parents=True, exist_ok=True)
                    old.write_bytes(new_bytes)
        json_path = args.out / EXPECTED_FILE
        if not json_path.exists() or json_path.read_text() != text:
            changed.append(EXPECTED_FILE)
            if not args.check:
                json_path.write_text(text)
    verb = "differ" if args.check else "rewritten"
    print(f"golden replays: {len(changed)} file(s) {verb}" + (f": {', '.join(changed)}" if changed else ""))
    return 1 if args.check and changed else 0


if __name__ == "__main__":
    sys.exit(main())
