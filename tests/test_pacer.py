"""The pacer: 60 Hz at every input delay, frames run as soon as their inputs are there, and the
side that runs ahead waits (a little per frame) until both sample together.

Two peers over an in-memory link on a simulated clock (no sockets, no sleeping): each runs the
session's loop (receive, `Pacer.run`, send, sleep for `Pacer.sleep_ms` or until bytes arrive).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pytest

from lockstep.bots import make_bot
from lockstep.rules import Rules
from peer.match import MatchPeer
from peer.pacer import (
    ADVANTAGE_SMOOTHING,
    MAX_CATCH_UP_TICKS,
    MAX_WAIT_PER_FRAME_MS,
    TICK_MS,
    FrameAdvantage,
    Pacer,
)
from peer.pair import Link, make_pair

FRAMES = 600


@dataclass
class Side:
    peer: MatchPeer
    inbox: Link  # what the other side sent to this one
    pacer: Pacer
    wake: int = 0
    frozen_until: int = 0  # a process that does not run meanwhile (a GC pause, a busy machine)
    started_ms: int | None = None
    ended_ms: int | None = None
    samples: list[int] = field(default_factory=list)


def play(
    delay: int | None,
    one_way_ms: int,
    *,
    fast: bool = False,
    joiner_frozen: tuple[int, int] = (0, 0),
    limit_ms: int = 60_000,
) -> tuple[Side, Side]:
    """Both peers' loops, event by event on one simulated millisecond clock, until both end."""
    rules = Rules(points_to_win=999, frame_limit=FRAMES)
    host_peer, joiner_peer = make_pair(rules, 3, delay_frames=delay)
    host = Side(host_peer, Link(one_way_ms), Pacer(fast))
    joiner = Side(joiner_peer, Link(one_way_ms), Pacer(fast))
    joiner.frozen_until = joiner_frozen[0] + joiner_frozen[1]
    bots = {id(host): make_bot("tracker", rules, 0).decide, id(joiner): make_bot("tracker", rules, 1).decide}
    pairs = ((host, joiner), (joiner, host))
    now = 0
    while not (host.peer.finished and joiner.peer.finished):
        assert now < limit_ms, "the match did not end"
        for side, other in pairs:
            if side.peer.finished or now < side.wake or joiner_frozen[0] <= now < side.frozen_until:
                continue
            data = side.inbox.deliver(now)
            if data:
                side.peer.receive_data(data, now)
            if side.peer.engine is None:
                side.peer.update(now, None)
            else:
                if side.started_ms is None:
                    side.started_ms = now
                    side.pacer.start(side.peer, now)
                bot = bots[id(side)]

                def sample(state, bot=bot, side=side, now=now):
                    side.samples.append(now)
                    return bot(state)

                side.pacer.run(side.peer, now, sample)
                side.peer.take_frames()
            out = side.peer.data_to_send()
            if out:
                other.inbox.send(out, now)
                other.wake = min(other.wake, now + one_way_ms)  # bytes wake a sleeping loop
            if side.peer.finished:
                side.ended_ms = now
            sleep = side.pacer.sleep_ms(side.peer, now)
            # Whole milliseconds, never early (the session's clock truncates, so it sleeps enough).
            side.wake = now + max(1, math.ceil(sleep))
            if side.inbox.in_flight:
                side.wake = min(side.wake, max(side.inbox.in_flight[0][0], now + 1))
        now += 1
    return host, joiner


def fps(side: Side) -> float:
    assert side.started_ms is not None and side.ended_ms is not None
    assert side.peer.outcome is not None and side.peer.outcome.result == "finished", side.peer.outcome
    return FRAMES / ((side.ended_ms - side.started_ms) / 1000)


@pytest.mark.parametrize("delay", range(9))
def test_a_match_plays_at_60_frames_per_second_at_every_delay_on_loopback(delay):
    host, joiner = play(delay, one_way_ms=0)
    assert fps(host) >= 59.4 and fps(joiner) >= 59.4
    assert host.pacer.stalls == joiner.pacer.stalls == 0


def test_at_delay_0_a_frame_runs_as_soon_as_the_peers_input_arrives_between_two_ticks():
    # 3 ms each way: every frame waits for the peer's input, which comes between two of our ticks.
    host, joiner = play(0, one_way_ms=3)
    assert fps(host) >= 59.4 and fps(joiner) >= 59.4
    # Samples keep the 60 Hz schedule: never two ticks apart once under way.
    for side in (host, joiner):
        gaps = [b - a for a, b in zip(side.samples[60:], side.samples[61:], strict=False)]
        assert max(gaps) <= 2 * TICK_MS


def test_the_side_that_runs_ahead_waits_until_both_sample_together():
    # 30 ms each way: the joiner's clock starts a one-way trip after the host's, so the host runs
    # about 30 ms ahead of it at first, and its frames wait for the joiner's inputs.
    host, joiner = play(None, one_way_ms=30)
    assert fps(host) >= 59.0 and fps(joiner) >= 59.0
    assert joiner.pacer.waited_ms == 0  # the side behind never waits
    assert 20 <= host.pacer.waited_ms <= 45  # about the lead it had, spread over many frames
    # At the end both sample each frame at about the same time (within a few milliseconds).
    lead = host.pacer.advantage.estimate
    assert lead is not None and abs(lead) <= 4
    host_lead = [j - h for h, j in zip(host.samples[-120:], joiner.samples[-120:], strict=False)]
    assert max(abs(x) for x in host_lead) <= 5


def test_a_long_freeze_of_one_side_resumes_at_the_normal_pace_and_the_clocks_meet_again():
    # The joiner's process does not run for a quarter of a second at 2 s: the host stalls; the
    # joiner then resumes at the normal pace (no burst of owed frames beyond the catch-up bound),
    # and whichever side is ahead afterwards slows until the two sample together again.
    host, joiner = play(4, one_way_ms=1, joiner_frozen=(2000, 250))
    assert fps(host) >= 57 and fps(joiner) >= 57  # 10 s of frames and the quarter second lost
    assert host.pacer.stalls > 0
    after = [t for t in joiner.samples if t >= 2250]
    for i in range(len(after) - 20):
        assert after[i + 20] - after[i] >= (20 - MAX_CATCH_UP_TICKS) * TICK_MS
    assert host.pacer.waited_ms + joiner.pacer.waited_ms > 0
    # Within half a tick of each other again. (Not closer: a pong that waited out the freeze
    # inflated the host's smoothed round trip, and that blurs its estimate for seconds.)
    offsets = [j - h for h, j in zip(host.samples[-60:], joiner.samples[-60:], strict=False)]
    assert max(abs(x) for x in offsets) < TICK_MS / 2


def test_fast_plays_as_fast_as_inputs_arrive():
    host, joiner = play(2, one_way_ms=0, fast=True)
    for side in (host, joiner):
        assert side.peer.outcome is not None and side.peer.outcome.result == "finished"
        assert side.ended_ms is not None and side.ended_ms < 1000  # nowhere near 10 s of 60 Hz


class _Stub:
    def __init__(self, *, finished: bool, waiting: bool) -> None:
        self.engine = type("E", (), {"finished": finished, "needs_local_input": lambda self: True})()
        self.waiting_for_peer = waiting


def test_fast_sleeps_while_waiting_for_the_goodbye_instead_of_spinning():
    """After its last frame a --fast peer only waits for the peer's goodbye (up to 2 s): polling
    with no timeout there burned a whole core."""
    pacer = Pacer(fast=True)
    assert pacer.sleep_ms(_Stub(finished=True, waiting=False), 0) > 0  # type: ignore[arg-type]
    assert pacer.sleep_ms(_Stub(finished=False, waiting=True), 0) > 0  # type: ignore[arg-type]
    assert pacer.sleep_ms(_Stub(finished=False, waiting=False), 0) == 0  # type: ignore[arg-type]


def test_frame_advantage_waits_only_when_ahead_and_at_most_a_fraction_of_a_tick():
    ahead = FrameAdvantage()
    for frame in range(20):  # our input sampled at t, the peer's for the same frame arrives 40 ms later
        ahead.local_sampled(frame, frame * TICK_MS, rtt_ms=10)
        ahead.remote_arrived(range(frame, frame + 1), frame * TICK_MS + 40, rtt_ms=10)
    assert ahead.estimate == pytest.approx(35)  # minus half the round trip
    waits = [ahead.wait_ms() for _ in range(200)]
    assert all(0 < w <= MAX_WAIT_PER_FRAME_MS for w in waits[:10])
    assert sum(waits) == pytest.approx(34, abs=1)  # the lead, down to the dead band, and no more
    behind = FrameAdvantage()
    for frame in range(20):  # the peer's input arrives first: we are behind
        behind.remote_arrived(range(frame, frame + 1), frame * TICK_MS, rtt_ms=10)
        behind.local_sampled(frame, frame * TICK_MS + 30, rtt_ms=10)
    assert behind.estimate is not None and behind.estimate < 0
    assert behind.wait_ms() == 0


def test_frame_advantage_pairs_inputs_by_frame_and_forgets_frames_never_paired():
    sync = FrameAdvantage()
    sync.remote_arrived(range(0, 40), 0.0, rtt_ms=0)  # resent after a drop: never sampled here again
    for frame in range(40, 400):  # from here on the peer's input for each frame arrives 5 ms after ours
        sync.local_sampled(frame, frame * TICK_MS, rtt_ms=0)
        sync.remote_arrived(range(frame, frame + 1), frame * TICK_MS + 5, rtt_ms=0)
    assert sync.estimate == pytest.approx(5)
    # Arrivals never paired are forgotten beyond a bound (memory stays small whatever a peer
    # sends): the oldest no longer count, the newest still do.
    sync.remote_arrived(range(400, 1400), 10_000.0, rtt_ms=0)
    sync.local_sampled(400, 0.0, rtt_ms=0)
    assert sync.estimate == pytest.approx(5)
    sync.local_sampled(1399, 10_000.0 - 85, rtt_ms=0)
    assert sync.estimate == pytest.approx(5 + (85 - 5) * ADVANTAGE_SMOOTHING)
