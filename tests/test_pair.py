"""Two peers in one process: full matches, desyncs, misbehaving peers, and a stateful machine."""

from hypothesis import given, settings
from hypothesis import strategies as st

from lockstep.bots import make_bot
from lockstep.game import Game
from lockstep.rules import Rules
from peer.messages import Goodbye, encode_input
from peer.messages import encode as encode_message
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


@settings(max_examples=25)
@given(
    before_end=st.integers(0, 12),
    delay=st.integers(1, 10),
    one_way=st.integers(0, 150),
    perturbed=st.sampled_from(["host", "joiner"]),
)
def test_a_divergence_just_before_the_frame_limit_is_named_at_its_frame_not_at_the_end(
    before_end, delay, one_way, perturbed
):
    """Each side finishes before the other's chain bits for its last frames arrive: those inputs,
    still in flight behind the goodbye, must be checked rather than dropped (it used to name N)."""
    end = 300
    f = end - before_end
    host, joiner = make_pair(
        Rules(points_to_win=99, frame_limit=end),
        7,
        delay_frames=delay,
        host_desync_at=f if perturbed == "host" else None,
        joiner_desync_at=f if perturbed == "joiner" else None,
    )
    run_pair(host, joiner, *bots(), one_way_ms=one_way, max_ticks=30_000)  # stalls: D < RTT
    for peer in (host, joiner):
        assert peer.outcome is not None and peer.outcome.result == "desync"
        assert f <= peer.outcome.desync.frame <= min(f + 2, end)


def test_the_desync_is_caught_by_the_healthy_side_on_its_own():
    """Without the perturbed side's goodbye, the healthy engine still sees the chain bits differ."""
    from lockstep.engine import CHAIN_BITS

    # Frame 301 is between two full chain checks (every 60 frames): only the bits can catch it.
    host, joiner = make_pair(Rules(points_to_win=99), 3, host_desync_at=301)
    host.connection.send_goodbye = lambda *args, **kwargs: None  # the perturbed side never tells
    run_pair(host, joiner, *bots(), one_way_ms=0, max_ticks=800)
    assert joiner.outcome.result == "desync"
    assert joiner.outcome.by_remote is False  # its own engine found it
    assert 301 <= joiner.outcome.desync.frame <= 303
    assert joiner.outcome.desync.remote_bits == CHAIN_BITS  # from the bits sent with the inputs


def test_garbled_bytes_are_a_protocol_error_that_names_no_desync_frame():
    """Bad bytes can fail a chain check before the decoder fails: the result is the bad data, and
    no desync frame (or report) is claimed for games that may well agree."""
    from lockstep.engine import chain_bits

    host, joiner = make_pair(RULES, 1, delay_frames=2)
    run_pair(host, joiner, *bots(), max_ticks=40)
    engine = host.engine
    checked = engine.remote_input_end() - engine.delay
    wrong_bits = chain_bits(engine.chain_at(checked)) ^ 1
    host.receive_data(encode_input(0, wrong_bits) + b"\xff" * 8, 1000)
    assert host.outcome.result == "protocol_error"
    assert host.outcome.desync is None


def test_a_failed_check_just_before_the_peer_quits_is_a_desync_not_a_quit():
    """The divergence is the news, whatever way the connection ends right after it."""
    from lockstep.engine import chain_bits

    host, joiner = make_pair(RULES, 1, delay_frames=2)
    run_pair(host, joiner, *bots(), max_ticks=40)
    engine = host.engine
    checked = engine.remote_input_end() - engine.delay
    wrong_bits = chain_bits(engine.chain_at(checked)) ^ 1
    quit_ = Goodbye("quit", engine.frame, bytes(8), "the other player quit")
    host.receive_data(encode_input(0, wrong_bits) + encode_message(quit_), 1000)
    assert host.outcome.result == "desync"
    assert host.outcome.desync is not None and host.outcome.desync.frame == checked


def test_a_joiner_whose_handshake_timed_out_after_ours_completed_is_named_as_such():
    """On a crawling link the joiner's deadline can pass before our welcome reaches it: its
    handshake_timeout is about its side, not a timeout of ours."""
    host, joiner = make_pair(RULES, 1, delay_frames=2)
    run_pair(host, joiner, *bots(), max_ticks=10)
    assert host.engine is not None
    late = Goodbye("handshake_timeout", 0, bytes(8), "no complete handshake within 5000 ms")
    host.receive_data(encode_message(late), 1000)
    assert host.outcome.result == "handshake_timeout" and host.outcome.by_remote
    assert host.outcome.detail == (
        "the other player gave up before its handshake completed (no complete handshake within 5000 ms)"
    )


def test_a_peer_that_sends_inputs_too_far_ahead_is_a_protocol_error():
    host, joiner = make_pair(RULES, 1, delay_frames=2)
    run_pair(host, joiner, *bots(), max_ticks=40)
    assert joiner.engine is not None and joiner.connection.phase is Phase.PLAYING
    joiner.receive_data(encode_input(1, 0) * 500, 1000)
    assert joiner.outcome.result == "protocol_error"
    assert "ahead" in joiner.outcome.detail
    engine = joiner.engine
    assert engine.remote_inputs_held() <= engine.frame + engine.max_ahead + 1


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


def _established_pair(rules=RULES, seed=1, **options):
    host, joiner = make_pair(rules, seed, delay_frames=2, **options)
    run_pair(host, joiner, *bots(), max_ticks=40)
    assert host.connection.phase is Phase.PLAYING and joiner.connection.phase is Phase.PLAYING
    return host, joiner


def test_a_finished_goodbye_naming_an_unreachable_frame_ends_the_match_at_once():
    """A lying (or broken) peer must not leave us waiting forever for a frame we can never reach."""
    _, joiner = _established_pair()
    joiner.receive_data(encode_message(Goodbye("finished", 10**9, bytes(8), "")), 5000)
    assert joiner.outcome is not None and joiner.outcome.result == "protocol_error"
    assert "10000000000" not in joiner.outcome.detail and "1000000000" in joiner.outcome.detail


def test_a_desync_goodbye_naming_any_frame_is_handled_without_an_exception():
    _, joiner = _established_pair()
    joiner.receive_data(encode_message(Goodbye("desync", 2**63, b"\x01" * 8, "lies")), 5000)
    desync = joiner.outcome.desync
    assert joiner.outcome.result == "desync"
    # A frame we never had: the report compares where we are, with our real chain, not zeros.
    assert (desync.frame, desync.local) == (joiner.engine.frame, joiner.engine.game.chain)
    assert desync.local != bytes(8)
    assert joiner.engine.inputs_before(2**63, 10)  # clamped to the history we have


def test_when_only_one_side_ends_the_match_both_report_desync():
    """One side's game ends at frame 300, the other's goes on: a divergence at the very end."""
    # Equal states and chains, but the host's game believes the match is over at frame 300: no
    # chain check can notice, only the ends differ.
    host, joiner = _established_pair(Rules(points_to_win=99), host_game=_ends_at(300))
    run_pair(host, joiner, *bots(), max_ticks=2000)
    assert joiner.outcome.result == "desync"
    assert host.outcome.result == "desync", host.outcome
    assert host.outcome.by_remote  # the host finished; the joiner told it the ends differ


def test_a_quit_crossing_our_finished_goodbye_still_counts_the_match_as_finished():
    rules = Rules(points_to_win=99, frame_limit=200)
    host, joiner = _established_pair(rules)
    now = 5000
    while not host.engine.finished:
        now += 16
        host.update(now, bots()[0])
        joiner.update(now, bots()[1])
        for src, dst in ((host, joiner), (joiner, host)):
            data = src.data_to_send()
            if data and not (src is host and host.engine.finished):  # the host's goodbye stays in flight
                dst.receive_data(data, now)
    joiner.quit(now)  # before the host's goodbye arrives
    host.receive_data(joiner.data_to_send(), now + 1)
    assert host.outcome.result == "finished" and "quit" in host.outcome.detail


def _ends_at(frame):
    """A game factory: Pong that believes its match is over at `frame` (same states and chains)."""

    class EndsAt(Game):
        @property
        def finished(self):
            return self.frame >= frame or super().finished

    return lambda established: EndsAt(established.rules, established.seed)


def test_games_that_end_at_different_frames_are_a_desync_on_both_sides():
    """The host's game ends at 300, the joiner's at 302, and the joiner gets there before the
    host's goodbye arrives: its honest goodbye names a frame the finished host no longer tracks."""
    host, joiner = make_pair(
        Rules(points_to_win=99), 4, delay_frames=4, host_game=_ends_at(300), joiner_game=_ends_at(302)
    )
    run_pair(host, joiner, *bots(), max_ticks=40)
    run_pair(host, joiner, *bots(), one_way_ms=50, max_ticks=2000)
    assert host.outcome.result == joiner.outcome.result == "desync", (host.outcome, joiner.outcome)


def _play_until(host, joiner, done, now=5000):
    for _ in range(10_000):
        if done():
            return now
        now += 16
        for peer, other, bot in ((host, joiner, bots()[0]), (joiner, host, bots()[1])):
            peer.update(now, bot)
            data = peer.data_to_send()
            if data:
                other.receive_data(data, now)
    raise AssertionError("the match did not get there")


def test_a_starved_loop_still_reaches_the_peers_final_frame_and_finishes():
    """The peer's goodbye arrives, then our loop stalls for seconds (a GC, a frozen window)."""
    host, joiner = _established_pair(Rules(points_to_win=99, frame_limit=200))
    now = _play_until(host, joiner, lambda: host.engine.finished)
    assert not joiner.engine.finished  # its last frame is still to come when the goodbye lands
    joiner.receive_data(host.data_to_send(), now)
    now += 3000
    for _ in range(10):
        now += 16
        joiner.update(now, bots()[1])
        host.receive_data(joiner.data_to_send(), now)
    assert joiner.outcome.result == "finished", joiner.outcome


def test_leaving_after_the_end_but_before_the_peers_confirmation_keeps_the_match_finished():
    rules = Rules(points_to_win=99, frame_limit=120)
    host, joiner = _established_pair(rules)
    now = 5000
    for _ in range(10_000):
        now += 16
        host.update(now, bots()[0])
        joiner.update(now, bots()[1])
        for src, dst in ((joiner, host), (host, joiner)):
            data = src.data_to_send()
            if data and not host.engine.finished:  # from the host's end on, nothing more arrives
                dst.receive_data(data, now)
        if host.engine.finished:
            break
    host.quit(now)
    assert host.outcome.result == "finished" and "left before" in host.outcome.detail


def test_a_late_handshake_goodbye_without_words_is_explained_not_left_empty():
    """The joiner's handshake may fail after our welcome; a bare reason still reads as a sentence."""
    host, _ = _established_pair()
    host.receive_data(encode_message(Goodbye("handshake_timeout", 0, bytes(8), "")), 5000)
    assert host.outcome.result == "handshake_timeout" and host.outcome.by_remote
    assert (
        host.outcome.detail == "the other player gave up before its handshake completed (handshake timeout)"
    )
    assert "()" not in host.outcome.detail
