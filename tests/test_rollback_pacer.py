"""Rollback under the session's pacer (the loops of tests/test_pacer.py, on a simulated clock): the
time sync keeps both peers' frames together, so they roll back about equally and not deep."""

from __future__ import annotations

import functools
import math

import pytest

import tests.test_pacer as paced
from lockstep.rollback import RollbackEngine
from lockstep.rules import TICKS_PER_SECOND
from peer.messages import Netcode
from peer.pair import make_pair


@pytest.mark.parametrize("one_way_ms", [30, 50])
def test_both_sides_roll_back_alike_and_no_deeper_than_the_round_trip(monkeypatch, one_way_ms):
    monkeypatch.setattr(paced, "make_pair", functools.partial(make_pair, netcode=Netcode.ROLLBACK))
    host, joiner = paced.play(None, one_way_ms=one_way_ms)
    assert host.peer.established.delay_frames == 1  # auto under rollback, at RTT <= 100 ms
    assert paced.fps(host) >= 59.0 and paced.fps(joiner) >= 59.0
    assert host.pacer.stalls == joiner.pacer.stalls == 0
    assert host.peer.outcome.final_chain == joiner.peer.outcome.final_chain
    engines = [side.peer.engine for side in (host, joiner)]
    assert all(isinstance(engine, RollbackEngine) for engine in engines)
    counts = sorted(engine.rollbacks for engine in engines)
    assert counts[0] > 0 and counts[1] <= 2 * counts[0] + 5, counts
    # A prediction is never older than a round trip (in frames, plus one for the tick it waits).
    round_trip = math.ceil(2 * one_way_ms * TICKS_PER_SECOND / 1000) + 1
    assert max(engine.deepest_rollback for engine in engines) <= round_trip
