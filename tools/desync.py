"""`pong desync A [B] [--json] [--png OUT]`: find and explain where two recordings diverge.

A and B are the two peers' replays or desync reports (JSON), in any mix. With one FILE, the
recording is checked against this build's re-simulation of its own inputs instead.

This module is the command: its arguments, loading the files into sides, the text and the JSON.
The pieces it puts together:

- `peer/report.py`: the desync report format (the writer a peer uses, and `parse_report`);
- `replay/divergence.py`: the analysis (re-simulating each side, pinning down where its game
  departed from its inputs, comparing two sides); its docstring describes the method;
- `tools/desync_png.py`: the picture, imported only with `--png` (so pygame is never imported
  without it).

Loading: a replay picks up its own report automatically (a `desync-*.json` in its directory whose
`replay` field names it and whose inputs agree with it); a report picks up the replay it names,
when present.

The output: at the divergence frame, the two states field by field (where they are known) and the
inputs around it, and with `--png` both states side by side with the differing objects outlined
in red (the other side's position as a thin blue outline) and the differing fields listed.

Exit codes: 0 no divergence, 1 diverged, 2 unreadable input. JSON (`--json`, last stdout line):
`diverged`, `first_frame`, `diff` (a list of {field, a, b}), and `kind` (`header`, `inputs` or
`chain`), `exact`, `frame_range`, `input_frame`, `diff_frame`, `inputs`, `a`, `b` (what each side
is and what its re-simulation showed), `explanation`, `png`, `warnings` (files skipped: a
`desync-*.json` beside a replay that cannot be read as a report is passed over, with a warning).
A malformed FILE itself (not JSON, wrong types, a missing key, bad hex, a number of thousands of
digits, more than MAX_REPORT_BYTES) is one line and exit 2.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from lockstep.inputs import unpack
from lockstep.rules import SIM_VERSION, TICKS_PER_SECOND
from peer.report import ParsedReport, ReportError, parse_report
from replay.divergence import (
    Base,
    Check,
    DivergenceError,
    Side,
    Verdict,
    check_alone,
    check_side,
    compare,
    model_how,
    side_from_replay,
)
from replay.format import MAGIC, ReplayError, ReplayTooLongError
from replay.reader import Replay, read_replay
from tools import exitcodes
from tools.exitcodes import CommandError
from tools.output import report, say

MAX_REPORT_BYTES = 1 << 20  # a real report is about 30 KB; reading stops here whatever the file
INPUTS_BEFORE = 5
INPUTS_AFTER = 2

# The analysis keeps a chain per frame and side, several times over: six hours of play (far beyond
# any match) stays under ~50 MB, where a crafted file claiming a billion frames would need tens of GB.
MAX_ANALYSED_FRAMES = 6 * 60 * 60 * TICKS_PER_SECOND


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


def load_side(label: str, path: str, warnings: list[str] | None = None) -> Side:
    """One recording as a side; a replay picks up its own report. Unreadable reports found beside
    a replay are skipped, each with a line in `warnings`."""
    if _sniff(path) == "report":
        parsed = _parse(path, _load_json(path))
        named = os.path.join(os.path.dirname(os.path.abspath(path)), parsed.replay_name)
        if parsed.replay_name and os.path.isfile(named):
            try:
                side = side_from_replay(label, named, _read_replay(named))
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
        replay = _read_replay(path)
    except ReplayError as exc:
        raise _unreadable(str(exc)) from None
    side = side_from_replay(label, path, replay)
    _find_report(side, [] if warnings is None else warnings)
    return side


def _read_replay(path: str) -> Replay:
    try:
        return read_replay(path, max_frames=MAX_ANALYSED_FRAMES)  # stops reading there
    except ReplayTooLongError:
        raise ReplayError(
            f"{path}: holds more than pong desync analyses ({MAX_ANALYSED_FRAMES} frames, six hours "
            "of play); pong replay verify checks a replay of any length"
        ) from None


def _side_from_report(label: str, parsed: ParsedReport) -> Side:
    if parsed.sim_version is not None and parsed.sim_version != SIM_VERSION:
        note = f"written by SIM_VERSION {parsed.sim_version}; this pong simulates SIM_VERSION {SIM_VERSION}"
    else:
        note = ""
    base = None
    if parsed.base_frame is not None:
        f = parsed.base_frame
        base = Base(f, parsed.states[f], parsed.chains[f])
    side = Side(
        label=label,
        path=parsed.path,
        rules=parsed.rules,
        seed=parsed.seed,
        names=parsed.names,
        base=base,
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


def _find_report(side: Side, warnings: list[str]) -> None:
    """Attach the replay's own desync report when one lies next to it (newest that fits).

    Reports of other replays are passed over in silence; a file that cannot be read as a report
    (it might be this replay's) is skipped with a warning, and never stops the analysis."""
    directory = os.path.dirname(os.path.abspath(side.path))
    name = os.path.basename(side.path)
    candidates = []
    for path in sorted(glob.glob(os.path.join(glob.escape(directory), "desync-*.json"))):
        if not os.path.isfile(path):  # never open a FIFO or a directory that happens to match
            continue
        try:
            data = _load_json(path)
            if not isinstance(data, dict):
                raise ReportError(f"{path}: not a usable desync report: not a JSON object")
            if data.get("replay") != name:
                continue
            parsed = parse_report(path, data)
            candidates.append((os.path.getmtime(path), path, parsed))
        except (CommandError, ReportError, OSError) as exc:
            warnings.append(f"skipped {exc}")
    for _, path, parsed in sorted(candidates, reverse=True):
        if _attach(side, parsed) is None:
            return
        side.notes.append(f"ignored {os.path.basename(path)}: it does not belong to this replay")


def _parse(path: str, data: Any) -> ParsedReport:
    try:
        return parse_report(path, data)
    except ReportError as exc:
        raise _unreadable(str(exc)) from None


def _load_json(path: str) -> Any:
    """The decoded JSON of a report file (at most MAX_REPORT_BYTES are read); CommandError else."""
    try:
        with open(path, "rb") as file:
            data = file.read(MAX_REPORT_BYTES + 1)
    except OSError as exc:
        raise _unreadable(f"{path}: cannot read it: {exc.strerror or exc}") from None
    if len(data) > MAX_REPORT_BYTES:
        raise _unreadable(f"{path}: not a usable desync report: more than {MAX_REPORT_BYTES} bytes")
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _unreadable(f"{path}: not a replay, and not valid JSON: {exc}") from None
    except RecursionError:
        raise _unreadable(f"{path}: not a usable desync report: nested too deeply") from None
    except ValueError:  # Python refuses to convert an integer of thousands of digits
        raise _unreadable(f"{path}: not a usable desync report: it holds a number too long to read") from None


# -- output ---------------------------------------------------------------------------------------


def _side_line(side: Side, check: Check) -> str:
    what = side.describe()
    span = f"frames {side.first_frame}..{side.end_frame}"
    if side.base is None:
        return (
            f"{side.label}: {side.path} ({what}): {span}; nothing to re-simulate from "
            "(a report without recent frames)"
        )
    if check.consistent:
        return (
            f"{side.label}: {side.path} ({what}): {span}; re-simulating its inputs reproduces all "
            f"{check.compared} recorded chains"
        )
    assert check.first_bad is not None
    agreeing = (
        f" (last agreeing recorded frame: {check.last_good})" if check.last_good < check.first_bad else ""
    )
    line = (
        f"{side.label}: {side.path} ({what}): {span}; its recorded chain of frame {check.first_bad} is not "
        f"what its own inputs give{agreeing}"
    )
    return line + _model_phrase(check)


def _model_phrase(check: Check) -> str:
    model = check.model
    if model is None:
        return "; no one-unit change of one field explains it, so the departure lies in frames " + (
            "{}..{}".format(*check.departure_frames)
        )
    tail = "" if check.model_first_bad is None else f" up to frame {check.valid_until}"
    return f"; it departed exactly at frame {model.frame}: {model_how(model)}{tail}"


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
    warnings: list[str] = []
    a = load_side("A", args.a, warnings)
    sides = [a]
    if args.b is not None:
        sides.append(load_side("B", args.b, warnings))
    warnings = list(dict.fromkeys(warnings))  # two replays in one directory find the same files
    for warning in warnings:
        say(f"pong: warning: {warning}", sys.stderr)
    try:
        checks = [check_side(s) for s in sides]
    except (ValueError, ArithmeticError, IndexError) as exc:  # a report's state beyond the rules
        raise _unreadable(f"cannot re-simulate the recordings: {exc}") from None
    lines = [_side_line(s, c) for s, c in zip(sides, checks)]
    for s in sides:
        lines += [f"  note: {note}" for note in s.notes]
    try:
        if len(sides) == 2:
            verdict = compare(sides[0], checks[0], sides[1], checks[1])
            labels = ("A", "B")
        else:
            verdict = check_alone(a, checks[0])
            labels = ("recorded (A)", "re-simulated")
    except DivergenceError as exc:
        raise _unreadable(str(exc)) from None
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
        from tools.desync_png import draw_png  # pygame: only with --png

        png_path = draw_png(png, sides, checks, verdict, labels)
        lines.append(f"picture: {png_path}")
    for line in lines:
        say(line)
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
            "warnings": warnings,
        },
        args.json,
    )
    return exitcodes.CHECK_FAILED if verdict.diverged else exitcodes.OK
