"""`pong desync` on malformed desync reports: one line and exit 2 for a FILE, a warning and no harm
for a bad report that merely lies beside a replay."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lockstep.game import Game
from lockstep.rules import Rules
from lockstep.script import random_inputs
from peer.report import REPORT_KIND
from replay.matches import record_inputs
from tests.conftest import ROOT
from tools import desync as desync_tool
from tools.cli import main

RULES = Rules(points_to_win=99)
SEED = 5
HUGE = "9" * 5000  # more digits than Python converts (4300): json.loads raises ValueError


def valid_report() -> dict[str, Any]:
    """A report of frames 10 and 11 of a healthy game: `pong desync` reads it and finds nothing."""
    inputs = random_inputs(SEED, 11)
    game = Game(RULES, SEED)
    recent = []
    for frame, frame_input in enumerate(inputs, start=1):
        game.advance(frame_input)
        if frame >= 10:
            recent.append(
                {
                    "frame": frame,
                    "input": frame_input,
                    "chain": game.chain.hex(),
                    "state": game.state.as_dict(),
                }
            )
    return {
        "kind": REPORT_KIND,
        "frame": 11,
        "seed": SEED,
        "rules": {k: getattr(RULES, k) for k in RULES.__dataclass_fields__},
        "local_chain": game.chain.hex(),
        "recent_frames": recent,
    }


def huge_int(text: str) -> bytes:
    return text.replace('"frame": 11', f'"frame": {HUGE}').encode()


def without(key: str) -> bytes:
    report = valid_report()
    del report[key]
    return json.dumps(report).encode()


def with_chain(value: Any) -> bytes:
    report = valid_report()
    report["recent_frames"][0]["chain"] = value
    return json.dumps(report).encode()


DELETE = object()  # a change that removes the key or item

MALFORMED = {
    "huge-integer": huge_int(json.dumps(valid_report())),
    "huge-integer-in-a-state": json.dumps(valid_report())
    .replace('"ball_x": ', f'"ball_x": {HUGE}0')
    .encode(),
    "frame-beyond-any-match": json.dumps(dict(valid_report(), frame=10**4000)).encode(),
    "frame-a-string": json.dumps(dict(valid_report(), frame="11")).encode(),
    "seed-a-float": json.dumps(dict(valid_report(), seed=5.0)).encode(),
    "rules-a-list": json.dumps(dict(valid_report(), rules=[1, 2])).encode(),
    "missing-seed": without("seed"),
    "missing-rules": without("rules"),
    "missing-kind": without("kind"),
    "bad-hex": with_chain("zz" * 8),
    "short-hex": with_chain("00" * 7),
    "hex-a-number": with_chain(7),
    "not-json": b'{"kind": "lockstep-pong desync report", "frame": ',
    "not-utf8": b'{"kind": "\xff"}',
    "nested-deeply": b"{" + b'"a": [' * 100_000 + b"]" * 100_000 + b"}",
    "too-big": b"{" + b" " * desync_tool.MAX_REPORT_BYTES + b"}",
}


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a JSON document, as a path of keys and indexes."""
    found = [prefix]
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else []
    for key, item in items:
        found += paths(item, (*prefix, key))
    return found


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)
PLACES = paths(valid_report())[1:]


@pytest.fixture(scope="module")
def healthy(tmp_path_factory):
    directory = tmp_path_factory.mktemp("healthy")
    path = directory / "a.replay"
    record_inputs(path, RULES, SEED, random_inputs(SEED, 200), end_reason="quit")
    return path


def test_a_valid_report_is_read(tmp_path, capsys):
    """The baseline the malformed ones depart from: it is read and reproduces."""
    path = tmp_path / "desync-11.json"
    path.write_text(json.dumps(valid_report()))
    assert main(["desync", str(path), "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["diverged"] is False and result["warnings"] == []


@pytest.mark.parametrize("content", list(MALFORMED.values()), ids=list(MALFORMED))
def test_a_malformed_report_is_one_line_and_exit_2_with_the_json_object(tmp_path, capsys, content):
    path = tmp_path / "desync-11.json"
    path.write_bytes(content)
    assert main(["desync", str(path), "--json"]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pong: error: "), captured.err
    assert "desync-11.json" in lines[0] and len(lines[0]) < 300  # never a number of 5000 digits
    result = json.loads(captured.out.strip().splitlines()[-1])
    assert result["ok"] is False and result["exit_code"] == 2 and "desync-11.json" in result["error"]


def test_a_huge_integer_is_no_traceback_and_never_exit_1(tmp_path):
    """Exit 1 means "diverged": a crash must not be read as a verdict (the issue's reproduction)."""
    path = tmp_path / "desync-11.json"
    path.write_bytes(MALFORMED["huge-integer"])
    proc = subprocess.run(
        [sys.executable, "-m", "tools", "desync", str(path), "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert "a number too long" in proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1])["exit_code"] == 2


@pytest.mark.parametrize("name", ["huge-integer", "not-json", "too-big", "missing-seed", "bad-hex"])
def test_a_malformed_report_beside_a_replay_is_skipped_with_a_warning(healthy, tmp_path, capsys, name):
    replay = tmp_path / "a.replay"
    replay.write_bytes(healthy.read_bytes())
    report = json.loads(MALFORMED[name]) if name in ("missing-seed", "bad-hex") else None
    if report is not None:  # readable JSON naming this replay: it might be its report
        report["replay"] = "a.replay"
        (tmp_path / "desync-11.json").write_text(json.dumps(report))
    else:
        (tmp_path / "desync-11.json").write_bytes(MALFORMED[name])
    assert main(["desync", str(replay), "--json"]) == 0
    captured = capsys.readouterr()
    warnings = captured.err.strip().splitlines()
    assert len(warnings) == 1 and warnings[0].startswith("pong: warning: skipped "), captured.err
    assert "desync-11.json" in warnings[0] and len(warnings[0]) < 300
    result = json.loads(captured.out.strip().splitlines()[-1])
    assert result["diverged"] is False and result["a"]["report"] is None
    assert len(result["warnings"]) == 1 and "desync-11.json" in result["warnings"][0]


def test_beside_two_replays_a_bad_report_is_skipped_and_the_comparison_stands(healthy, tmp_path, capsys):
    a, b = tmp_path / "a.replay", tmp_path / "b.replay"
    a.write_bytes(healthy.read_bytes())
    inputs = random_inputs(SEED, 200)
    inputs[99] = (inputs[99] + 1) % 16  # the input of frame 100
    record_inputs(b, RULES, SEED, inputs, end_reason="quit")
    (tmp_path / "desync-99.json").write_bytes(MALFORMED["huge-integer"])
    assert main(["desync", str(a), str(b), "--json"]) == 1  # the inputs differ at frame 100
    captured = capsys.readouterr()
    result = json.loads(captured.out.strip().splitlines()[-1])
    assert result["first_frame"] == 100 and result["kind"] == "inputs"
    assert captured.err.count("pong: warning: skipped ") == 1  # one file, one warning
    assert len(result["warnings"]) == 1


def test_reports_of_other_replays_are_passed_over_in_silence(healthy, tmp_path, capsys):
    replay = tmp_path / "a.replay"
    replay.write_bytes(healthy.read_bytes())
    (tmp_path / "desync-11.json").write_text(json.dumps(dict(valid_report(), replay="other.replay")))
    assert main(["desync", str(replay), "--json"]) == 0
    captured = capsys.readouterr()
    assert "warning" not in captured.err
    assert json.loads(captured.out.strip().splitlines()[-1])["warnings"] == []


def test_only_the_first_bytes_of_a_report_are_read(tmp_path, monkeypatch):
    """A report file is read up to MAX_REPORT_BYTES + 1 bytes, however large it is."""
    path = tmp_path / "desync-11.json"
    path.write_bytes(b"{" + b" " * (3 * desync_tool.MAX_REPORT_BYTES))
    requested: list[int] = []

    class Counting:
        def __init__(self, file: Any) -> None:
            self.file = file

        def __enter__(self) -> Counting:
            return self

        def __exit__(self, *exc: object) -> None:
            self.file.close()

        def read(self, size: int = -1) -> bytes:
            requested.append(size)
            data: bytes = self.file.read(size)
            return data

    def counting_open(name: str, mode: str) -> Counting:
        return Counting(open(name, mode))

    monkeypatch.setattr(desync_tool, "open", counting_open, raising=False)
    with pytest.raises(desync_tool.CommandError, match="more than"):
        desync_tool._load_json(str(path))
    assert requested == [desync_tool.MAX_REPORT_BYTES + 1]


@settings(max_examples=40)
@given(
    changes=st.lists(
        st.tuples(st.sampled_from(PLACES), JSON_VALUES | st.just(DELETE)), min_size=1, max_size=3
    )
)
def test_any_report_with_any_value_anywhere_is_read_or_refused_in_one_line(tmp_path_factory, changes):
    """Whatever value replaces whatever part of a report (or removes it), `pong desync` gives a
    verdict (0 or 1) or one line and exit 2, and never an exception."""
    report = valid_report()
    for place, value in changes:
        parent: Any = report
        try:
            for key in place[:-1]:
                parent = parent[key]
            if value is DELETE:
                del parent[place[-1]]
            else:
                parent[place[-1]] = value
        except (KeyError, IndexError, TypeError):  # an earlier change removed or replaced it
            continue
    path = tmp_path_factory.mktemp("any") / "desync-11.json"
    path.write_text(json.dumps(report))
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["desync", str(path), "--json"])
    assert code in (0, 1, 2)
    result = json.loads(out.getvalue().strip().splitlines()[-1])
    if code == 2:
        assert len(err.getvalue().strip().splitlines()) == 1 and result["exit_code"] == 2
    else:
        assert result["diverged"] is (code == 1)
