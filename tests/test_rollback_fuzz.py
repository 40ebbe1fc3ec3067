"""The two-peer stateful machine of `pong fuzz` (a link that splits, merges and holds back bytes,
random pacing, quits and injected desyncs), every run in rollback mode."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis.stateful import run_state_machine_as_test

import tools.fuzz_properties as fuzz_properties
from lockstep.rollback import RollbackEngine
from peer.messages import Netcode
from peer.pair import make_pair


def test_the_two_peer_machine_holds_under_rollback(monkeypatch):
    pairs: list[Any] = []

    def rollback_pair(*args: Any, **kwargs: Any) -> Any:
        pair = make_pair(*args, **{**kwargs, "netcode": Netcode.ROLLBACK})
        pairs.append(pair)
        return pair

    monkeypatch.setattr(fuzz_properties, "make_pair", rollback_pair)
    run_state_machine_as_test(
        fuzz_properties.TwoPeersMachine,
        settings=settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck)),
    )
    ran = [peer.engine for pair in pairs for peer in pair if peer.engine is not None]
    assert ran and all(isinstance(engine, RollbackEngine) for engine in ran)
    assert sum(engine.rollbacks for engine in ran) > 0  # the held-back bytes make predictions fail
