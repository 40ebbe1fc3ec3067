"""A dropped link no longer ends the match: both sides pause, the joiner takes its seat back over a
new connection, and the match goes on exactly where it stopped (the in-memory pair)."""

import functools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lockstep.bots import make_bot
from lockstep.rules import Rules
from peer.pair import make_pair, run_pair

RULES = Rules(points_to_win=2)


def bots():
    return make_bot("tracker", RULES, 0).decide, make_bot("random", RULES, 1, 5).decide


def _match(drops=None, *, delay=2, one_way_ms=0, reconnect_ms=20_000, key=None):
    host, joiner = make_pair(
        RULES, 7, delay_frames=delay, reconnect_ms=reconnect_ms, host_key=key, joiner_key=key
    )
    run = run_pair(host, joiner, *bots(), one_way_ms=one_way_ms, drops=drops, key=key, max_ticks=20_000)
    return run.host, run.joiner


@pytest.mark.parametrize("delay, one_way_ms", [(0, 0), (2, 0), (3, 30), (8, 50)])
def test_three_drops_end_with_the_chain_of_the_same_match_without_them(delay, one_way_ms):
    clean_host, clean_joiner = _match(delay=delay, one_way_ms=one_way_ms)
    assert clean_host.outcome.result == clean_joiner.outcome.result == "finished"
    host, joiner = _match({40: 10, 100: 60, 180: 3}, delay=delay, one_way_ms=one_way_ms)
    for peer, clean in ((host, clean_host), (joiner, clean_joiner)):
        assert peer.outcome.result == "finished", peer.outcome
        assert (peer.outcome.frames, peer.outcome.final_chain) == (
            clean.outcome.frames,
            clean.outcome.final_chain,
        )
        assert peer.reconnects == 3 and peer.paused_ms > 0


def test_a_drop_with_a_key_is_resumed_with_it():
    host, joiner = _match({100: 20}, key=b"k")
    assert host.outcome.result == joiner.outcome.result == "finished"
    assert host.reconnects == joiner.reconnects == 1


def test_without_reconnect_a_drop_ends_the_match_as_before():
    host, joiner = _match({100: 20}, reconnect_ms=0)
    assert host.outcome.result == joiner.outcome.result == "peer_timeout"
    assert host.reconnects == joiner.reconnects == 0


def test_a_link_that_stays_down_past_the_window_ends_in_peer_timeout():
    host, joiner = _match({100: 10_000}, reconnect_ms=2_000)
    for peer in (host, joiner):
        assert peer.outcome.result == "peer_timeout" and "not back within 2 s" in peer.outcome.detail
        assert peer.reconnects == 0


def test_a_paused_match_samples_no_input_and_runs_no_frame():
    host, joiner = make_pair(RULES, 7, delay_frames=2, reconnect_ms=20_000)
    run_pair(host, joiner, *bots(), max_ticks=60)
    frame = host.engine.frame
    host.receive_data(b"", 1000)
    assert host.lost and not host.finished
    calls = []
    for now in range(1016, 3000, 16):
        assert not host.update(now, lambda state: calls.append(state) or 0)
    assert calls == [] and host.engine.frame == frame


@functools.lru_cache
def _clean_chain(delay, one_way_ms):
    return _match(delay=delay, one_way_ms=one_way_ms)[0].outcome.final_chain


@settings(max_examples=15, deadline=None)
@given(
    delay=st.integers(0, 8),
    one_way_ms=st.sampled_from([0, 8, 30, 70]),
    # Any moment of the match (its handshake is over by tick 60 on these links: before, there is
    # no match to resume), any length of outage within the window.
    drops=st.dictionaries(st.integers(60, 250), st.integers(0, 80), max_size=4),
)
def test_any_drops_at_any_moment_lose_and_repeat_no_input(delay, one_way_ms, drops):
    host, joiner = _match(drops, delay=delay, one_way_ms=one_way_ms)
    assert host.outcome.result == joiner.outcome.result == "finished", (host.outcome, joiner.outcome)
    assert host.outcome.final_chain == joiner.outcome.final_chain == _clean_chain(delay, one_way_ms)
    assert host.reconnects == joiner.reconnects <= len(drops)


def test_a_silent_link_is_a_drop_too_and_the_silent_side_is_told():
    """No end of stream, just silence past the timeout: the side that notices says so, and both wait."""
    host, joiner = make_pair(RULES, 7, delay_frames=2, reconnect_ms=20_000)
    run_pair(host, joiner, *bots(), max_ticks=60)
    now = 2000
    host.update(now + 5001, bots()[0])  # nothing from the joiner for the silence timeout
    assert host.lost and not host.finished
    joiner.receive_data(host.data_to_send(), now + 5002)  # our goodbye: peer_timeout
    assert joiner.lost and not joiner.finished


def _tracker_bots():
    return make_bot("tracker", RULES, 0).decide, make_bot("tracker", RULES, 1).decide


@pytest.mark.parametrize("crashed", ["joiner", "host"])
@pytest.mark.parametrize(
    "delay, lag", [(2, 0), (2, 37), (5, 59), (0, 13), (2, "all"), (5, "all but 3"), (0, "all")]
)
def test_a_player_that_crashed_takes_its_seat_back_from_its_replay(crashed, delay, lag):
    """Its replay holds the frames up to its last whole chunk (`lag` frames short of where it was);
    a new process re-simulates them, proves the secret, gets back its own inputs the crash lost,
    and the match ends as the same match without the crash, frame for frame."""
    from dataclasses import replace

    from peer.match import MatchPeer, recorded_seat
    from peer.messages import Purpose
    from peer.protocol import Connection, HostConfig, JoinerConfig, Role

    clean_host, clean_joiner = make_pair(RULES, 7, delay_frames=delay)
    run_pair(clean_host, clean_joiner, *_tracker_bots(), max_ticks=20_000)
    clean = [f.frame_input for f in clean_joiner.take_frames()]

    host, joiner = make_pair(RULES, 7, delay_frames=delay, reconnect_ms=20_000)
    early = isinstance(lag, str)  # a crash within the first second, before the first chunk
    ticks = 40 if early else 150
    run_pair(host, joiner, *_tracker_bots(), max_ticks=ticks)
    victim, survivor = (joiner, host) if crashed == "joiner" else (host, joiner)
    played = [f.frame_input for f in victim.take_frames()]
    # A crash in the first second leaves a replay of no frame, or of fewer than the delay.
    keep = {"all": 0, "all but 3": 3}.get(lag) if isinstance(lag, str) else len(played) - lag
    recorded = bytes(played[:keep])
    est = replace(victim.established, rtt_ms=0)  # what its replay's header says
    now = ticks * 16 + 1
    survivor.receive_data(b"", now)  # the crash: end of stream, no goodbye
    assert survivor.lost
    seat = recorded_seat(est, recorded)
    if crashed == "joiner":
        config = JoinerConfig(None, "joiner", Purpose.RESUME, seat)
        new = MatchPeer(Connection(Role.JOINER, now, b"n" * 16, joiner=config), reconnect_ms=20_000)
        new.take_seat_from(est, recorded)
        resume = HostConfig(RULES, 7, purposes=frozenset({Purpose.RESUME}), seat=host.seat)
        host.reconnect(Connection(Role.HOST, now, b"m" * 16, host=resume), now)
        pair = (host, new)
    else:
        resume = HostConfig(RULES, 7, purposes=frozenset({Purpose.RESUME}), seat=lambda: seat)
        new = MatchPeer(Connection(Role.HOST, now, b"m" * 16, host=resume), reconnect_ms=20_000)
        new.take_seat_from(est, recorded)
        config = JoinerConfig(None, "joiner", Purpose.RESUME, joiner.seat())
        joiner.reconnect(Connection(Role.JOINER, now, b"n" * 16, joiner=config), now)
        pair = (new, joiner)
    run_pair(*pair, *_tracker_bots(), max_ticks=20_000, start_ms=now)
    for peer in pair:
        assert peer.outcome.result == "finished", peer.outcome
        assert peer.outcome.final_chain == clean_host.outcome.final_chain
    assert new.rejoined_at_frame == len(recorded)
    assert [f.frame_input for f in new.take_frames()] == clean  # its replay: the whole match from frame 0
