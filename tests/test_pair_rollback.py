"""Rollback matches in the in-memory pair: whole matches at several latencies, and desyncs."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lockstep.bots import make_bot
from lockstep.engine import Engine
from lockstep.game import Game
from lockstep.rollback import RollbackEngine
from lockstep.rules import Rules
from peer.messages import Netcode
from peer.pair import make_pair, run_pair
from peer.report import desync_report

RULES = Rules(points_to_win=3)


def bots(seed=0):
    return make_bot("tracker", RULES, 0).decide, make_bot("random", RULES, 1, seed).decide


@pytest.mark.parametrize("one_way", [0, 8, 25, 50])
def test_rollback_matches_finish_with_equal_chains_and_replayable_confirmed_frames(one_way):
    host, joiner = make_pair(RULES, 9, netcode=Netcode.ROLLBACK)
    run = run_pair(host, joiner, *bots(), one_way_ms=one_way)
    assert isinstance(host.engine, RollbackEngine) and isinstance(joiner.engine, RollbackEngine)
    assert host.outcome.result == joiner.outcome.result == "finished"
    assert host.outcome.final_chain == joiner.outcome.final_chain
    assert host.outcome.frames == joiner.outcome.frames == host.engine.frame
    # What the replay gets: confirmed frames only, the same on both sides, and they re-simulate.
    frames = [e.frame_input for e in host.take_frames()]
    assert [e.frame_input for e in joiner.take_frames()] == frames
    assert len(frames) == host.outcome.frames
    assert Game(RULES, 9).run(frames) == host.outcome.final_chain
    # The automatic delay is small whatever the latency, and the game rarely waits.
    assert host.established.delay_frames <= 2
    assert run.host_stalls + run.joiner_stalls <= len(frames) // 100
    # The joiner starts half a round trip late (the pair has no time sync), so the host runs ahead
    # of the joiner's inputs: its frames run on predictions that are sometimes wrong.
    if one_way >= 25:
        assert host.engine.rollbacks > 0 and 0 < host.engine.deepest_rollback <= host.engine.max_rollback
    assert joiner.engine.deepest_rollback <= joiner.engine.max_rollback


def test_at_the_same_small_delay_lockstep_stalls_where_rollback_does_not():
    runs = {}
    for netcode in Netcode:
        host, joiner = make_pair(RULES, 9, delay_frames=1, netcode=netcode)
        runs[netcode] = run_pair(host, joiner, *bots(), one_way_ms=40)
        assert host.outcome.result == "finished"
        assert isinstance(host.engine, RollbackEngine if netcode is Netcode.ROLLBACK else Engine)
    assert runs[Netcode.LOCKSTEP].host_stalls > 100
    assert runs[Netcode.ROLLBACK].host_stalls <= 5


@settings(max_examples=15, deadline=None)
@given(st.integers(1, 600), st.integers(0, 50), st.sampled_from(["host", "joiner"]))
def test_a_divergence_under_rollback_ends_both_peers_with_desync_at_its_frame(f, one_way, perturbed):
    host, joiner = make_pair(
        Rules(points_to_win=99),
        3,
        netcode=Netcode.ROLLBACK,
        host_desync_at=f if perturbed == "host" else None,
        joiner_desync_at=f if perturbed == "joiner" else None,
    )
    run_pair(host, joiner, *bots(), one_way_ms=one_way, max_ticks=f + 400)
    for peer in (host, joiner):
        assert peer.outcome is not None and peer.outcome.result == "desync"
        assert f <= peer.outcome.desync.frame <= f + 2  # every confirmed frame is checked


def test_a_desync_under_rollback_is_reported_like_in_lockstep(tmp_path):
    reports = {}
    for netcode in Netcode:
        host, joiner = make_pair(
            Rules(points_to_win=99), 3, delay_frames=2, netcode=netcode, joiner_desync_at=200
        )
        run_pair(host, joiner, *bots(), one_way_ms=0, max_ticks=800)
        assert joiner.outcome.result == "desync"
        reports[netcode] = desync_report(joiner, joiner.outcome.desync, str(tmp_path / "x.replay"))
    lock, roll = reports[Netcode.LOCKSTEP], reports[Netcode.ROLLBACK]
    # Without latency nothing is predicted: the same frame, chains and states, confirmed frames only.
    for key in ("frame", "local_chain", "state_last_agreed", "state_first_divergent"):
        assert roll[key] == lock[key], key
    assert roll["state_first_divergent"] is not None
    assert roll["frames_simulated"] <= roll["frame"] + 8
