"""Two peers in one process: full matches, desyncs, misbehaving peers, and a stateful machine."""

from hypothesis import given, settings
from hypothesis import strategies as st

from lockstep.bots import make_bot
from lockstep.game import Game
from lockstep.rules import Rules
from peer.messages import encode_input
from peer.pair import make_pair, run_pair
from peer.protocol import Phase

RULES = Rules(points_to_win=3)


def bots(seed=0):
    return make_bot("tracker", RULES, 0).decide, make_bot("random", RULES, 1, seed).decide


def test_a_full_match_ends_finished_with_equal_chains_and_replays_that_re_simulate():
    host, joiner = make_pair(RULES, 9)
    run = run_pair(host, joiner, *bots(), one_way_ms=40)
    assert host.outcome.result == joiner.outcome.result == "finished"
    assert host.outcome.final_chain == joiner.outcome.final_chain
    assert host.outcome.frames == joiner.outcome.frames == host.engine.frame
    assert run.host_stalls == run.joiner_stalls == 0
    frames = [e.frame_input for e in host.take_frames()]
    assert [e.frame_input for e in joiner.take_frames()] == frames
    assert Game(RULES, 9).run(frames) == host.outcome.final_chain


@settings(max_examples=25)
@given(st.integers(1, 700), st.integers(0, 60))
def test_a_divergence_at_frame_f_ends_both_peers_with_desync_naming_a_frame_in_f_to_f_plus_2(f, one_way):
    host, joiner = make_pair(Rules(points_to_win=99), 3, joiner_desync_at=f)
    run_pair(host, joiner, *bots(), one_way_ms=one_way, max_ticks=f + 400)
    for peer in (host, joiner):
        assert peer.outcome is not None and peer.outcome.result == "desync"
        assert f <= peer.outcome.desync.frame <= f + 2


def test_the_desync_is_caught_by_the_healthy_side_on_its_own():
    """Without the perturbed side's goodbye, the healthy engine still sees the chain bits differ."""
    host, joiner = make_pair(Rules(points_to_win=99), 3, host_desync_at=300)
    run_pair(host, joiner, *bots(), one_way_ms=0, max_ticks=800)
    assert joiner.outcome.result == "desync"
    assert 300 <= joiner.outcome.desync.frame <= 302


def test_a_peer_that_sends_inputs_too_far_ahead_is_a_protocol_error():
    host, joiner = make_pair(RULES, 1, delay_frames=2)
    run_pair(host, joiner, *bots(), max_ticks=40)
    assert joiner.engine is not None and joiner.connection.phase is Phase.PLAYING
    joiner.receive_data(encode_input(1, 0) * 500, 1000)
    assert joiner.outcome.result == "protocol_error"
    assert "ahead" in joiner.outcome.detail
    assert len(joiner.engine._remote) <= joiner.engine.max_ahead + 1


def test_an_oversized_message_ends_the_match_as_a_protocol_error():
    host, joiner = make_pair(RULES, 1)
    run_pair(host, joiner, *bots(), max_ticks=40)
    assert joiner.connection.phase is Phase.PLAYING
    joiner.receive_data(b"\x86\xff\xff" + b"x" * 100, 1000)
    assert joiner.outcome.result == "protocol_error" and "limit" in joiner.outcome.detail
    # The peer is told why.
    host.receive_data(joiner.data_to_send(), 1001)
    host.update(1001, bots()[0])
    assert host.outcome.result == "protocol_error"


def test_quit_ends_both_sides_with_quit():
    host, joiner = make_pair(RULES, 1)
    run_pair(host, joiner, *bots(), max_ticks=100)
    joiner.quit(2000)
    assert joiner.outcome.result == "quit" and not joiner.outcome.by_remote
    host.receive_data(joiner.data_to_send(), 2001)
    assert host.outcome.result == "quit" and host.outcome.by_remote


# The stateful machine (random pacing over a link that splits, merges and holds back bytes) is
# tools.fuzz_properties.TwoPeersMachine; tests/test_fuzz_properties.py runs it with the suite.
