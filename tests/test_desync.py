"""`pong desync` on crafted recordings, desync reports from the in-memory pair, and the PNG.

The end-to-end run with real `pong` processes is in test_desync_e2e.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lockstep.bots import make_bot
from lockstep.chain import chain_next
from lockstep.engine import DesyncDetected
from lockstep.game import Game
from lockstep.inputs import DOWN, UP, pack, unpack
from lockstep.rules import Rules
from lockstep.script import random_inputs
from lockstep.state import FIELDS
from peer.messages import Goodbye
from peer.messages import encode as encode_message
from peer.pair import make_pair, run_pair
from peer.report import REPORT_KIND, ReportError, desync_report, parse_report, write_desync_report
from replay import divergence
from replay.writer import ReplayWriter
from tests.conftest import ROOT
from tools import desync as desync_tool
from tools import desync_png
from tools.cli import main

RULES = Rules(points_to_win=99)
SEED = 11
FRAMES = 400
INPUTS = random_inputs(5, FRAMES)


def record(path, inputs=INPUTS, *, seed=SEED, perturb=None, bogus_chain_at=None, finish=True):
    """Record `inputs` as a peer would: `perturb=(frame, field, delta)` changes the state right
    after that frame's step (like --debug-desync-at); `bogus_chain_at` writes a wrong chain there."""
    game = Game(RULES, seed)
    writer = ReplayWriter(str(path), RULES, seed, 2, ("left", "right"), 0)
    for frame, frame_input in enumerate(inputs, start=1):
        before = game.chain
        chain = game.advance(frame_input)
        if perturb is not None and frame == perturb[0]:
            name, delta = perturb[1], perturb[2]
            setattr(game.state, name, getattr(game.state, name) + delta)
            chain = game.chain = chain_next(before, game.state)
        if frame == bogus_chain_at:
            chain = bytes(8)
        writer.add_frame(frame_input, chain)
    if finish:
        writer.finish("quit")
    else:
        writer.close()
    return path


def run(capsys, *args):
    code = main(["desync", *map(str, args), "--json"])
    out = capsys.readouterr().out
    return code, json.loads(out.strip().splitlines()[-1]), out


@pytest.fixture
def healthy(tmp_path):
    return record(tmp_path / "a.replay")


def test_identical_replays_do_not_diverge(tmp_path, healthy, capsys):
    other = record(tmp_path / "b.replay")
    code, result, out = run(capsys, healthy, other)
    assert code == 0
    assert result["diverged"] is False and result["first_frame"] is None and result["diff"] == []
    assert result["compared_frames"] == [0, FRAMES]
    assert "no divergence" in out


def _inputs_differing_at(frame):
    inputs = list(INPUTS)
    left, right = unpack(inputs[frame - 1])
    inputs[frame - 1] = pack(UP if left == DOWN else DOWN, right)
    return inputs


def test_inputs_differing_at_one_frame(tmp_path, healthy, capsys):
    frame = 137
    other = record(tmp_path / "b.replay", _inputs_differing_at(frame))
    code, result, out = run(capsys, healthy, other)
    assert code == 1
    assert result["diverged"] is True
    assert result["first_frame"] == result["input_frame"] == frame
    assert result["kind"] == "inputs" and result["exact"] is True
    assert result["diff_frame"] == frame
    assert [item["field"] for item in result["diff"]] == ["paddle_l"]
    rows = {row["frame"]: row for row in result["inputs"]}
    assert rows[frame]["a"] != rows[frame]["b"] and rows[frame - 1]["a"] == rows[frame - 1]["b"]
    assert "<- differ" in out


def test_a_perturbed_recording_is_pinned_to_the_frame_and_field(tmp_path, healthy, capsys):
    """Same inputs, but B's game was perturbed right after frame 150 (what --debug-desync-at does):
    only B's recorded chains show it, and the search names the frame and the field."""
    other = record(tmp_path / "b.replay", perturb=(150, "ball_y", -1))
    code, result, _ = run(capsys, healthy, other)
    assert code == 1
    assert result["first_frame"] == 150 and result["kind"] == "chain" and result["exact"] is True
    assert result["input_frame"] is None
    (item,) = result["diff"]
    assert item["field"] == "ball_y" and item["b"] == item["a"] - 1
    assert result["a"]["reproduces_recorded_chains"] is True
    assert result["b"]["reproduces_recorded_chains"] is False
    assert result["b"]["first_bad_frame"] == 180 and result["b"]["last_good_frame"] == 120
    departure = result["b"]["departure"]
    assert (departure["frame"], departure["source"], departure["field"], departure["delta"]) == (
        150,
        "search",
        "ball_y",
        -1,
    )
    assert departure["changes"] == [{"field": "ball_y", "resimulated": item["a"], "real": item["b"]}]


def test_chains_differing_at_one_frame_name_the_checkpoint_and_the_range(tmp_path, healthy, capsys):
    other = record(tmp_path / "b.replay", bogus_chain_at=120)
    code, result, out = run(capsys, healthy, other)
    assert code == 1
    assert result["first_frame"] == 120 and result["kind"] == "chain"
    assert result["exact"] is False and result["frame_range"] == [61, 120]
    assert result["diff"] == [] and result["state_b"] is None
    assert result["b"]["departure"] is None
    assert "not known" in out


def test_a_truncated_recording_is_compared_only_on_its_prefix(tmp_path, healthy, capsys):
    cut = record(tmp_path / "cut.replay", INPUTS[:250], finish=False)
    code, result, _ = run(capsys, healthy, cut)
    assert code == 0 and result["diverged"] is False
    assert result["b"]["truncated"] is True
    assert result["compared_frames"] == [0, 250]

    # A difference after the cut is not a divergence of the common prefix ...
    late = record(tmp_path / "late.replay", _inputs_differing_at(300))
    code, result, _ = run(capsys, late, cut)
    assert code == 0 and result["diverged"] is False

    # ... one inside it is.
    early = record(tmp_path / "early.replay", _inputs_differing_at(137))
    code, result, _ = run(capsys, early, cut)
    assert code == 1 and result["first_frame"] == 137


def test_a_byte_cut_file_is_read_up_to_its_last_intact_chunk(tmp_path, healthy, capsys):
    data = healthy.read_bytes()
    cut = tmp_path / "bytes-cut.replay"
    cut.write_bytes(data[: len(data) * 2 // 3])
    code, result, _ = run(capsys, healthy, cut)
    assert code == 0 and result["diverged"] is False
    assert result["compared_frames"][1] < FRAMES


def test_different_seeds_diverge_at_frame_zero(tmp_path, healthy, capsys):
    other = record(tmp_path / "b.replay", seed=SEED + 1)
    code, result, _ = run(capsys, healthy, other)
    assert code == 1
    assert result["first_frame"] == 0 and result["kind"] == "header"
    assert {"field": "seed", "a": SEED, "b": SEED + 1} in result["diff"]


@pytest.mark.parametrize(
    "content",
    [None, b"", b"not a replay at all", b'{"kind": "something else"}', b"{not json", b"\xff\xfe{"],
    ids=["missing", "empty", "junk", "other-json", "bad-json", "binary"],
)
def test_unreadable_input_is_one_line_and_exit_2(tmp_path, healthy, content):
    bad = tmp_path / "bad.file"
    if content is not None:
        bad.write_bytes(content)
    proc = subprocess.run(
        [sys.executable, "-m", "tools", "desync", str(healthy), str(bad)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stderr.startswith("pong: error: ")
    assert "bad.file" in proc.stderr


def test_a_report_with_a_state_out_of_range_is_refused(tmp_path, healthy, capsys):
    state = dict(Game(RULES, SEED).state.as_dict(), ball_y=1 << 70)
    report = {
        "kind": REPORT_KIND,
        "frame": 0,
        "seed": SEED,
        "rules": {k: getattr(RULES, k) for k in RULES.__dataclass_fields__},
        "recent_frames": [{"frame": 0, "input": None, "chain": "00" * 8, "state": state}],
    }
    path = tmp_path / "desync-0.json"
    path.write_text(json.dumps(report))
    assert main(["desync", str(healthy), str(path)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "out of range" in err


def test_a_png_into_a_missing_directory_is_refused(tmp_path, healthy, capsys):
    assert main(["desync", str(healthy), str(healthy), "--png", str(tmp_path / "no" / "x.png")]) == 2
    assert "does not exist" in capsys.readouterr().err


# -- one recording ---------------------------------------------------------------------------------


def test_one_good_replay_reproduces(healthy, capsys):
    code, result, _ = run(capsys, healthy)
    assert code == 0 and result["diverged"] is False and result["mode"] == "single"


def test_one_replay_from_another_build_is_narrowed_to_its_first_bad_chunk(tmp_path, capsys):
    path = record(tmp_path / "other-build.replay", bogus_chain_at=120)
    code, result, out = run(capsys, path)
    assert code == 1
    assert result["first_frame"] == 120 and result["frame_range"] == [61, 120]
    assert "chunk 1 (frames 61..120)" in out and "different build" in out


def test_a_replay_of_no_frames_whose_start_chain_is_wrong_diverges_at_frame_0(tmp_path, capsys):
    """A footer and no chunk (found by fuzzing well-formed replays): it used to be an IndexError."""
    from replay.writer import encode_footer, encode_header

    path = tmp_path / "empty.replay"
    path.write_bytes(encode_header(RULES, 1, 2, ("a", "b"), 0) + encode_footer(0, b"\x01" * 8, "finished"))
    code, result, out = run(capsys, path)
    assert code == 1
    assert result["first_frame"] == 0 and result["frame_range"] == [0, 0]
    assert "frames 0..0" in out and "frames 1..0" not in out


def test_a_replay_longer_than_the_analysis_takes_is_refused_in_one_line(healthy, capsys, monkeypatch):
    """Memory grows with the frames analysed: a crafted file claiming a billion must not take it all."""
    monkeypatch.setattr(desync_tool, "MAX_ANALYSED_FRAMES", 100)
    code, result, _ = run(capsys, healthy, healthy)
    assert code == 2 and "more than pong desync analyses (100" in result["error"]
    assert "pong replay verify" in result["error"]


def test_one_perturbed_replay_names_the_frame_and_field(tmp_path, capsys):
    path = record(tmp_path / "perturbed.replay", perturb=(75, "ball_vx", 1))
    code, result, out = run(capsys, path)
    assert code == 1
    assert result["first_frame"] == 75 and result["exact"] is True
    assert result["diff"] == [
        {"field": "ball_vx", "a": result["state_b"]["ball_vx"] + 1, "b": result["state_b"]["ball_vx"]}
    ]
    assert "chunk 1 (frames 61..120)" in out


# -- reports -----------------------------------------------------------------------------------------


def _tracker(slot):
    bot = make_bot("tracker", RULES, slot, 1)
    return bot.decide


@pytest.fixture(scope="module")
def pair_desync():
    f = 200
    host, joiner = make_pair(RULES, 3, delay_frames=2, host_desync_at=f)
    run_pair(host, joiner, _tracker(0), _tracker(1), one_way_ms=10, max_ticks=5000)
    return f, host, joiner


def test_reports_hold_frame_chains_states_inputs_and_versions(pair_desync, tmp_path):
    f, host, joiner = pair_desync
    reports = []
    for peer in (host, joiner):
        assert peer.outcome is not None and peer.outcome.result == "desync"
        report = desync_report(peer, peer.outcome.desync, str(tmp_path / "x.replay"))
        reports.append(report)
        assert report["kind"] == REPORT_KIND and report["report_format"] == 2
        assert f <= report["frame"] <= f + 2
        assert report["last_agreed_frame"] < report["frame"]
        assert report["state_first_divergent"]["frame"] == report["frame"]
        assert report["state_last_agreed"]["frame"] == report["state_last_agreed_frame"] < report["frame"]
        assert len(bytes.fromhex(report["local_chain"])) == 8 and report["remote_chain"]
        frames = [entry["frame"] for entry in report["recent_frames"]]
        assert frames == list(range(frames[0], frames[-1] + 1))
        assert frames[0] <= report["frame"] - 10 and frames[-1] >= report["frame"]
        assert "recent_inputs" not in report  # format 1 never shipped: recent_frames only
        assert set(report["versions"]) >= {"sim", "protocol", "python"}
        json.dumps(report)
    (host_report, joiner_report) = reports
    assert {host_report["role"], joiner_report["role"]} == {"host", "joiner"}
    by_frame = [{e["frame"]: e for e in r["recent_frames"]} for r in reports]
    # Up to f - 1 the two peers agree; at f the perturbed host's ball_y is one unit off.
    assert by_frame[0][f - 1]["chain"] == by_frame[1][f - 1]["chain"]
    assert by_frame[0][f]["chain"] != by_frame[1][f]["chain"]
    a, b = by_frame[0][f]["state"], by_frame[1][f]["state"]
    assert {k for k in a if a[k] != b[k]} == {"ball_y"}


def test_a_written_report_parses_back_into_what_the_peer_had(pair_desync, tmp_path):
    """The writer and the reader share one module: a report round-trips."""
    _, host, _ = pair_desync
    desync = host.outcome.desync
    data = json.loads(json.dumps(desync_report(host, desync, str(tmp_path / "host.replay"))))
    parsed = parse_report("r.json", data)
    assert parsed.frame == desync.frame and parsed.seed == 3 and parsed.rules == RULES
    assert parsed.replay_name == "host.replay" and parsed.names == tuple(data["names"])
    frames = [entry["frame"] for entry in data["recent_frames"]]
    assert parsed.base_frame == frames[0] and parsed.input_start == frames[0] + 1
    assert list(parsed.inputs) == [entry["input"] for entry in data["recent_frames"][1:]]
    for entry in data["recent_frames"]:
        assert parsed.states[entry["frame"]].as_dict() == entry["state"]
        assert parsed.chains[entry["frame"]].hex() == entry["chain"]
    with pytest.raises(ReportError, match=r"r\.json: not a usable desync report"):
        parse_report("r.json", dict(data, recent_frames=[{"frame": 1}]))


def test_two_peers_writing_into_one_directory_never_overwrite_each_other(pair_desync, tmp_path):
    _, host, joiner = pair_desync
    first = write_desync_report(str(tmp_path / "host.replay"), host, host.outcome.desync)
    second = write_desync_report(str(tmp_path / "joiner.replay"), joiner, joiner.outcome.desync)
    assert first and second and first != second
    assert os.path.basename(first) == f"desync-{host.outcome.desync.frame}.json"
    with open(first) as a, open(second) as b:
        assert json.load(a)["replay"] == "host.replay" and json.load(b)["replay"] == "joiner.replay"
    # An unwritable place: no report, no exception.
    assert write_desync_report(str(tmp_path / "missing" / "x.replay"), host, host.outcome.desync) is None


def test_a_desync_goodbye_naming_any_frame_still_gets_a_report_for_the_frames_we_have(tmp_path, capsys):
    """A peer's desync goodbye may name any frame (here 2**63): the report is written for the last
    frame this side simulated, with its real chain there, without an exception, and `pong desync`
    reads it."""
    host, joiner = make_pair(RULES, 1, delay_frames=2)
    run_pair(host, joiner, _tracker(0), _tracker(1), max_ticks=40)
    joiner.receive_data(encode_message(Goodbye("desync", 2**63, b"\x01" * 8, "lies")), 5000)
    assert joiner.outcome is not None and joiner.outcome.result == "desync"
    desync = joiner.outcome.desync
    last = joiner.engine.frame
    report = desync_report(joiner, desync, str(tmp_path / "joiner.replay"))
    assert report["frame"] == last and report["state_first_divergent"]["frame"] == last
    assert report["recent_frames"][-1]["frame"] == last
    real = joiner.engine.chain_at(last)
    assert real is not None and report["local_chain"] == real.hex() != "00" * 8
    assert report["recent_frames"][-1]["chain"] == real.hex()
    path = write_desync_report(str(tmp_path / "joiner.replay"), joiner, desync)
    assert path == str(tmp_path / f"desync-{last}.json")
    code, result, _ = run(capsys, path)
    assert code == 0 and result["diverged"] is False  # the joiner's own game is consistent


@pytest.mark.parametrize("frame", [2**63, 10**30, -1, -(2**63)])
def test_a_report_for_any_desync_frame_is_written_clamped_to_our_history(pair_desync, tmp_path, frame):
    _, host, _ = pair_desync
    desync = DesyncDetected(frame, bytes(8), b"\x01" * 8, 64)
    path = write_desync_report(str(tmp_path / "host.replay"), host, desync)
    assert path is not None  # a frame out of range is clamped, not a reason to write nothing
    with open(path) as file:
        report = json.load(file)
    assert 0 <= report["frame"] <= host.engine.frame and report["remote_frame"] == frame
    # Our real chain at the frame reported, not the placeholder of a frame we never had.
    assert report["local_chain"] == host.engine.chain_at(report["frame"]).hex() != "00" * 8


def test_writing_a_report_is_best_effort(tmp_path):
    """Whatever goes wrong while building or writing it, the caller gets None, not an exception."""
    broken = SimpleNamespace(engine=None, established=None, outcome=None)
    desync = DesyncDetected(5, bytes(8), bytes(8), 64)
    assert write_desync_report(str(tmp_path / "x.replay"), broken, desync) is None
    assert list(tmp_path.iterdir()) == []


def test_two_reports_alone_name_the_frame_and_the_field(pair_desync, tmp_path, capsys):
    f, host, joiner = pair_desync
    paths = [
        write_desync_report(str(tmp_path / f"{name}.replay"), peer, peer.outcome.desync)
        for name, peer in (("host", host), ("joiner", joiner))
    ]
    code, result, _ = run(capsys, *paths)
    assert code == 1
    assert result["first_frame"] == f and result["exact"] is True
    assert [item["field"] for item in result["diff"]] == ["ball_y"]
    assert result["a"]["departure"]["source"] == "report" and result["b"]["departure"] is None
    # A report checked on its own: the host's recorded state departs from its inputs at f.
    code, result, _ = run(capsys, paths[0])
    assert code == 1 and result["first_frame"] == f and [d["field"] for d in result["diff"]] == ["ball_y"]


def test_a_replay_picks_up_its_own_report_and_ignores_one_that_does_not_fit(tmp_path, capsys):
    path = record(tmp_path / "b.replay", perturb=(150, "ball_y", -1))
    healthy = record(tmp_path / "a.replay")
    # A stale report naming b.replay whose inputs do not match it is ignored, with a note.
    game = Game(RULES, SEED)
    recent = []
    for frame in (100, 101):
        while game.state.frame < frame:
            game.advance(INPUTS[game.state.frame])
        wrong = (INPUTS[frame - 1] + 1) % 16  # replay numbering: the input of frame f is INPUTS[f - 1]
        entry = {"frame": frame, "input": wrong, "chain": game.chain.hex(), "state": game.state.as_dict()}
        recent.append(entry)
    stale = {
        "kind": REPORT_KIND,
        "frame": 101,
        "seed": SEED,
        "rules": {k: getattr(RULES, k) for k in RULES.__dataclass_fields__},
        "replay": "b.replay",
        "recent_frames": recent,
    }
    (tmp_path / "desync-101.json").write_text(json.dumps(stale))
    code, result, _ = run(capsys, healthy, path)
    assert code == 1 and result["first_frame"] == 150
    assert result["b"]["report"] is None
    assert any("does not belong" in note for note in result["b"]["notes"])


def test_no_pygame_without_png(tmp_path, healthy):
    other = record(tmp_path / "b.replay", perturb=(150, "ball_y", -1))
    code = (
        "import sys; from tools.cli import main; "
        f"rc = main(['desync', {str(healthy)!r}, {str(other)!r}]); "
        "assert 'pygame' not in sys.modules, 'pygame imported'; sys.exit(rc)"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1, proc.stderr
    assert "Hello from the pygame community" not in proc.stdout


# -- the picture ---------------------------------------------------------------------------------------


def test_png_shows_both_states_with_the_differing_object_marked(tmp_path, healthy, capsys):
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    import pygame

    from lockstep.state import State
    from replay.render import ball_rect, court_layout, paddle_rects

    other = record(tmp_path / "b.replay", perturb=(150, "ball_y", -1))
    out = tmp_path / "desync.png"
    code, result, _ = run(capsys, healthy, other, "--png", out)
    assert code == 1 and result["png"] == str(out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = pygame.image.load(str(out))
    assert image.get_width() == 2 * desync_png.PANEL_W + 3 * desync_png.PAD
    layout = court_layout(RULES, desync_png.PANEL_W, desync_png.PANEL_H)
    top = desync_png.TITLE_H + desync_png.CAPTION_H
    for n, key in enumerate(("state_a", "state_b")):
        state = State(**result[key])
        left = desync_png.PAD + n * (desync_png.PANEL_W + desync_png.PAD)
        box = pygame.Rect(layout.rect(*ball_rect(RULES, state))).inflate(16, 16).move(left, top)
        # The red outline round the ball, on both sides ...
        for x, y in ((box.left + 1, box.centery), (box.right - 2, box.centery), (box.centerx, box.top + 1)):
            assert tuple(image.get_at((x, y)))[:3] == desync_png.RED, (n, x, y)
        # ... and none round the paddles, which agree.
        paddle = pygame.Rect(layout.rect(*paddle_rects(RULES, state)[0])).inflate(16, 16).move(left, top)
        assert tuple(image.get_at((paddle.left + 1, paddle.centery)))[:3] != desync_png.RED


@settings(max_examples=15)
@given(
    frame=st.integers(1, FRAMES),
    name=st.sampled_from([n for n in FIELDS if n != "rng"]),
    delta=st.sampled_from([-1, 1]),
)
def test_any_one_unit_perturbation_is_named_exactly(frame, name, delta):
    """Whatever frame and field a peer's game departs at by one unit, `pong desync` on the two
    replays alone names that frame and that field, and nothing else."""
    with tempfile.TemporaryDirectory() as directory:
        a = record(Path(directory) / "a.replay")
        b = record(Path(directory) / "b.replay", perturb=(frame, name, delta))
        sides = [desync_tool.load_side(label, str(p)) for label, p in (("A", a), ("B", b))]
        checks = [divergence.check_side(side) for side in sides]
        verdict = divergence.compare(sides[0], checks[0], sides[1], checks[1])
    assert verdict.diverged and verdict.first_frame == frame and verdict.exact
    assert verdict.diff == [
        {"field": name, "a": getattr(verdict.state_a, name), "b": getattr(verdict.state_a, name) + delta}
    ]


@settings(max_examples=10)
@given(
    frame=st.integers(1, 300),
    delay=st.sampled_from([0, 2, 5]),
    perturbed=st.sampled_from(["host", "joiner"]),
)
def test_for_any_frame_the_two_live_reports_name_it_and_the_field(frame, delay, perturbed):
    """The in-memory pair with one side perturbed at F: each report names a frame in [F, F+2],
    and `pong desync` on the two reports alone names F and ball_y exactly."""
    host, joiner = make_pair(
        RULES,
        3,
        delay_frames=delay,
        host_desync_at=frame if perturbed == "host" else None,
        joiner_desync_at=frame if perturbed == "joiner" else None,
    )
    run_pair(host, joiner, _tracker(0), _tracker(1), one_way_ms=16, max_ticks=5000)
    with tempfile.TemporaryDirectory() as directory:
        sides = []
        for label, name, peer in (("A", "host", host), ("B", "joiner", joiner)):
            assert peer.outcome is not None and peer.outcome.result == "desync"
            assert frame <= peer.outcome.desync.frame <= frame + 2
            path = write_desync_report(str(Path(directory) / f"{name}.replay"), peer, peer.outcome.desync)
            assert path is not None
            sides.append(desync_tool.load_side(label, path))
        checks = [divergence.check_side(side) for side in sides]
        verdict = divergence.compare(sides[0], checks[0], sides[1], checks[1])
    assert verdict.first_frame == frame and verdict.exact, verdict.lines
    assert [item["field"] for item in verdict.diff] == ["ball_y"]
