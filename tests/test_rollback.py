"""The rollback engine: predictions, rollbacks, and confirmed frames equal to the lockstep engine's."""

from collections import deque

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lockstep import Engine
from lockstep.engine import NO_CHECK_LAG, ChainToSend, DesyncDetected, FrameAdvanced, chain_bits
from lockstep.game import Game
from lockstep.inputs import pack
from lockstep.rollback import (
    DEFAULT_MAX_ROLLBACK,
    MAX_ROLLBACK,
    RollbackEngine,
    rollback_auto_delay,
)
from lockstep.rules import Rules
from lockstep.synctest import run_synctest
from peer.perturb import PerturbedGame
from tests.tiny_game import TinyGame

RULES = Rules(points_to_win=999)


def script(seed, slot):
    """A player's input for each input frame: changes often, so predictions are often wrong."""
    return lambda frame: (frame * (5 + 2 * slot) + seed + frame // 7) % 4


def run_two(make_engine, latency_ticks, ticks, seed=7, games=None):
    """Two engines, one per slot, exchanging inputs and chains over links `latency_ticks` long;
    each samples one input per tick when it may. Returns both and their confirmed frames."""
    games = games or (Game(RULES, seed), Game(RULES, seed))
    engines = [make_engine(games[0], 0), make_engine(games[1], 1)]
    links: list[deque[tuple[int, object]]] = [deque(), deque()]  # to engine 0, to engine 1
    confirmed: list[list[FrameAdvanced]] = [[], []]
    for tick in range(ticks):
        for me in (0, 1):
            engine, link = engines[me], links[me]
            while link and link[0][0] <= tick:
                message = link.popleft()[1]
                if isinstance(message, ChainToSend):
                    engine.add_remote_chain(message.frame, message.chain)
                else:
                    engine.add_remote_input(*message)
            if engine.needs_local_input():
                sent = engine.add_local_input(script(seed, me)(tick))
                links[1 - me].append(
                    (tick + latency_ticks, (sent.player_input, sent.chain_bits, sent.check_lag))
                )
            for event in engine.advance():
                if isinstance(event, FrameAdvanced):
                    confirmed[me].append(event)
                elif isinstance(event, ChainToSend):
                    links[1 - me].append((tick + latency_ticks, event))
        if all(e.desync is not None for e in engines):
            break
    return engines, confirmed


def lockstep(game, slot, delay=2):
    return Engine(game, delay, slot)


def rollback(delay=2, max_rollback=DEFAULT_MAX_ROLLBACK):
    return lambda game, slot: RollbackEngine(game, delay, slot, max_rollback=max_rollback)


def reference_chains(frame_inputs, seed=7):
    game = Game(RULES, seed)
    return [game.advance(i) for i in frame_inputs]


@settings(max_examples=30, deadline=None)
@given(latency=st.integers(0, 12), delay=st.integers(0, 3), max_rollback=st.integers(0, 10))
def test_rollback_confirms_exactly_the_frames_and_chains_lockstep_plays_from_the_same_inputs(
    latency, delay, max_rollback
):
    (a, b), (fa, fb) = run_two(rollback(delay, max_rollback), latency, 400)
    assert a.desync is None and b.desync is None
    # Both sides confirm the same history: the inputs the two scripts gave, chained by Pong.
    n = min(len(fa), len(fb))
    assert n >= 20
    assert [(e.frame, e.frame_input, e.chain) for e in fa[:n]] == [
        (e.frame, e.frame_input, e.chain) for e in fb[:n]
    ]
    assert [e.frame for e in fa] == list(range(1, len(fa) + 1))
    assert [e.chain for e in fa] == reference_chains([e.frame_input for e in fa])
    # The lockstep engine fed the same per-frame inputs confirms the very same chains.
    engine = Engine(Game(RULES, 7), 0, 0)
    lock_chains = []
    for e in fa:
        engine.add_local_input(e.frame_input & 3)
        engine.add_remote_input((e.frame_input >> 2) & 3, 0, NO_CHECK_LAG)
        lock_chains += [x.chain for x in engine.advance() if isinstance(x, FrameAdvanced)]
    assert lock_chains == [e.chain for e in fa]


def test_with_latency_the_game_runs_ahead_and_rolls_back_but_never_beyond_its_limit():
    (a, b), (fa, _) = run_two(rollback(1, 8), 4, 300)
    for engine in (a, b):
        assert engine.rollbacks > 20 and engine.resimulated_frames >= engine.rollbacks
        assert 1 <= engine.deepest_rollback <= 8
        assert engine.predicted_frame > engine.frame  # the game runs ahead of what is confirmed
        assert engine.predicted_frame - engine.frame <= 8
        assert engine.last_agreed_frame > engine.frame - 20
    # Lockstep at the same latency and delay waits instead: far fewer frames in the same time.
    _, (lfa, _) = run_two(lambda g, s: Engine(g, 1, s), 4, 300)
    assert len(fa) > 1.5 * len(lfa)


def test_a_wrong_prediction_restores_and_resimulates_from_its_frame():
    engine = RollbackEngine(Game(RULES, 3), 0, 0, max_rollback=8)
    for _ in range(5):
        engine.add_local_input(0)
        engine.advance()
    assert engine.predicted_frame == 5 and engine.frame == 0  # nothing of the peer yet
    for k in range(2):
        engine.add_remote_input(0, chain_bits(engine.chain), k)  # as predicted: no rollback
    events = engine.advance()
    assert engine.rollbacks == 0 and [e.frame for e in events if isinstance(e, FrameAdvanced)] == [1, 2]
    engine.add_remote_input(1, chain_bits(engine.chain_at(0)), 2)  # frame 2: predicted 0, was UP
    engine.advance()
    assert engine.rollbacks == 1 and engine.resimulated_frames == 3 and engine.deepest_rollback == 3
    assert engine.frame == 3 and engine.predicted_frame == 5
    # The predicted frames after it now use the peer's latest input.
    game = Game(RULES, 3)
    expected = [game.advance(i) for i in (0, 0, pack(0, 1), pack(0, 1), pack(0, 1))]
    assert engine.game.chain == expected[-1] and engine.chain == expected[2]


def test_inputs_carry_checks_of_confirmed_frames_only():
    engine = RollbackEngine(Game(RULES, 3), 0, 0, max_rollback=8)
    sent = []
    for _ in range(6):
        sent.append(engine.add_local_input(0))
        engine.advance()
    # The peer sent nothing: frame 0 is the only confirmed one, and every check names it.
    assert engine.frame == 0
    assert [s.frame - engine.delay - s.check_lag for s in sent] == [0] * 6
    assert {s.chain_bits for s in sent} == {chain_bits(engine.chain_at(0))}
    assert engine.chain_at(1) is None and engine.snapshot_at(1) is None  # predicted: not shown


def test_received_checks_of_frames_not_confirmed_wait_for_them():
    engine = RollbackEngine(Game(RULES, 3), 0, 0, max_rollback=8)
    reference = Game(RULES, 3)
    chains = [reference.chain] + [reference.advance(0) for _ in range(4)]
    engine.add_remote_chain(3, b"\x00" * 8)  # wrong, but frame 3 is not confirmed here yet
    for _ in range(4):
        engine.add_local_input(0)
        engine.advance()
    assert engine.desync is None and engine.pending_checks() == 1
    for frame in range(3):
        engine.add_remote_input(0, chain_bits(chains[frame]), 0)
    events = engine.advance()
    # Frames 1 and 2 are confirmed and agree; frame 3 is confirmed too, and its check fails.
    assert engine.last_agreed_frame == 2 and engine.frame == 3
    assert isinstance(events[-1], DesyncDetected) and events[-1].frame == 3 and events[-1].remote_bits == 64


def test_the_game_never_runs_more_than_max_rollback_ahead_and_then_waits():
    engine = RollbackEngine(Game(RULES, 3), 2, 0, max_rollback=4)
    for _ in range(20):
        if engine.needs_local_input():
            engine.add_local_input(0)
        engine.advance()
    # Frames 0..1 have the peer's (neutral) inputs; then 4 predicted ones at most.
    assert engine.frame == 2 and engine.predicted_frame == 6
    assert engine.waiting_for_remote() and not engine.needs_local_input()


def test_a_predicted_end_is_not_the_end_until_confirmed():
    game = TinyGame(5, end_at=4)
    engine = RollbackEngine(game, 0, 0, max_rollback=8)
    for _ in range(6):
        if engine.needs_local_input():
            engine.add_local_input(1)
        engine.advance()
    assert engine.game.finished and not engine.finished and engine.waiting_for_remote()
    for _ in range(4):
        engine.add_remote_input(2, 0, NO_CHECK_LAG)  # every prediction wrong: replayed to the end
    events = engine.advance()
    assert engine.finished and engine.frame == 4
    assert isinstance(events[-1], ChainToSend) and events[-1].frame == 4


@pytest.mark.parametrize("at", [1, 30, 200])
def test_a_divergence_under_rollback_is_caught_within_a_few_frames(at):
    games = (Game(RULES, 7), PerturbedGame(RULES, 7, at))
    (a, b), _ = run_two(rollback(1, 8), 3, at + 60, games=games)
    for engine in (a, b):
        assert isinstance(engine.desync, DesyncDetected)
        assert at <= engine.desync.frame <= at + 2


def test_rollback_runs_the_tiny_game_too():
    games = (TinyGame(9), TinyGame(9))
    (a, b), (fa, fb) = run_two(rollback(1, 6), 3, 200, games=games)
    assert a.desync is None and b.desync is None and a.rollbacks > 0
    n = min(len(fa), len(fb))
    assert n > 150 and [e.chain for e in fa[:n]] == [e.chain for e in fb[:n]]


@pytest.mark.parametrize("new_game", [lambda: Game(RULES, 11), lambda: TinyGame(11)])
def test_synctest_at_the_default_rollback_distance(new_game):
    """What rollback relies on: restoring a snapshot and re-simulating gives the same chains."""
    inputs = [(f * 7 + f // 5) % 16 for f in range(600)]
    result = run_synctest(new_game, inputs, DEFAULT_MAX_ROLLBACK)
    assert result.ok, result.first_bad_frame


@pytest.mark.parametrize("rtt, delay", [(0, 1), (50, 1), (100, 1), (101, 2), (300, 2)])
def test_auto_delay_under_rollback_is_one_or_two_frames(rtt, delay):
    assert rollback_auto_delay(rtt) == delay


def test_settings_out_of_range_are_refused():
    with pytest.raises(ValueError, match="max rollback"):
        RollbackEngine(Game(RULES, 1), 1, 0, max_rollback=MAX_ROLLBACK + 1)
    with pytest.raises(ValueError, match="rtt"):
        rollback_auto_delay(-1)


def test_after_a_burst_of_confirmations_each_input_checks_the_next_frame():
    engine = RollbackEngine(Game(RULES, 3), 0, 0, max_rollback=8)
    for _ in range(6):
        engine.add_local_input(0)
        engine.advance()
    for _ in range(6):
        engine.add_remote_input(0, 0, NO_CHECK_LAG)
    engine.advance()
    assert engine.frame == 6  # six frames confirmed at once
    checked = []
    for _ in range(4):
        sent = engine.add_local_input(0)
        checked.append(sent.frame - engine.delay - sent.check_lag)
        assert sent.chain_bits == chain_bits(engine.chain_at(checked[-1]))
        engine.advance()
    assert checked == [1, 2, 3, 4]  # none skipped, so a divergence is named at its frame
