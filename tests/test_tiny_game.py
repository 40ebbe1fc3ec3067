"""A game that is not Pong runs through the engine, the in-memory pair and synctest unchanged."""

import pytest

from lockstep import Engine, Simulation
from lockstep.engine import ChainToSend, DesyncDetected, FrameAdvanced
from lockstep.rules import Rules
from lockstep.synctest import run_synctest
from peer.pair import make_pair, run_pair
from tests.tiny_game import NudgedTinyGame, TinyGame


def reference_chains(seed, frame_inputs):
    game = TinyGame(seed)
    return [game.chain] + [game.advance(i) for i in frame_inputs]


def test_the_tiny_game_is_a_deterministic_simulation():
    game: Simulation = TinyGame(5)
    assert (game.frame, game.finished) == (0, False)
    chains = reference_chains(5, [1, 2, 3, 0] * 50)
    assert chains == reference_chains(5, [1, 2, 3, 0] * 50)
    assert len(set(chains)) == len(chains)  # every frame moves the chain
    assert reference_chains(5, [1, 2, 3, 1])[-1] != chains[4]  # and every input counts


def drive(a, b, frames):
    """Two engines exchanging inputs and chain checks immediately."""
    for f in range(frames):
        for me, other in ((a, b), (b, a)):
            if me.needs_local_input():
                sent = me.add_local_input((f * 3 + me.local_slot) % 4)
                other.add_remote_input(sent.player_input, sent.chain_bits, sent.check_lag)
        for me, other in ((a, b), (b, a)):
            for event in me.advance():
                if isinstance(event, ChainToSend):
                    other.add_remote_chain(event.frame, event.chain)
        if (a.finished and b.finished) or (a.desync and b.desync):
            break


def test_two_engines_play_the_tiny_game_to_its_end_in_agreement():
    a = Engine(TinyGame(9, end_at=500), 2, 0)
    b = Engine(TinyGame(9, end_at=500), 2, 1)
    drive(a, b, 1000)
    assert a.finished and b.finished and a.desync is None and b.desync is None
    assert a.frame == b.frame == 500 and a.game.chain == b.game.chain
    assert a.last_agreed_frame >= 490
    # The engine fed the game exactly the packed inputs it reports.
    frame_inputs = [frame_input for _, frame_input in a.inputs_before(500, 20)]
    replayed = TinyGame(9)
    replayed.restore(a.snapshot_at(480))
    for frame_input in frame_inputs:
        replayed.advance(frame_input)
    assert replayed.chain == a.game.chain


@pytest.mark.parametrize("delay", [0, 3])
def test_a_tiny_game_that_departs_is_caught_by_both_engines(delay):
    a = Engine(TinyGame(9), delay, 0)
    b = Engine(NudgedTinyGame(9, at_frame=200), delay, 1)
    drive(a, b, 400)
    for engine in (a, b):
        assert isinstance(engine.desync, DesyncDetected)
        assert 200 <= engine.desync.frame <= 202


def test_the_in_memory_pair_plays_the_tiny_game_to_a_confirmed_finish():
    def tiny(established):
        return TinyGame(established.seed, end_at=300)

    host, joiner = make_pair(Rules(), 11, delay_frames=2, host_game=tiny, joiner_game=tiny)
    shown = []

    def host_input(word):
        shown.append(word)
        return word % 4

    run = run_pair(host, joiner, host_input, lambda word: (word >> 3) % 4, one_way_ms=30)
    assert host.outcome.result == joiner.outcome.result == "finished"
    assert host.outcome.frames == joiner.outcome.frames == 300
    assert host.outcome.final_chain == joiner.outcome.final_chain
    assert isinstance(host.engine.game, TinyGame)
    assert shown[0] == TinyGame(11).word  # input sources see the tiny game's state
    frames = host.take_frames()
    assert [e.frame for e in frames] == list(range(1, 301)) and all(
        isinstance(e, FrameAdvanced) for e in frames
    )
    assert [e.frame_input for e in joiner.take_frames()] == [e.frame_input for e in frames]
    assert run.ticks < 400  # a few stalls at most: a delay of 2 frames is below the 60 ms RTT


def test_the_in_memory_pair_reports_a_desync_of_the_tiny_game():
    host, joiner = make_pair(
        Rules(),
        11,
        delay_frames=2,
        host_game=lambda est: TinyGame(est.seed),
        joiner_game=lambda est: NudgedTinyGame(est.seed, at_frame=150),
    )
    run_pair(host, joiner, lambda word: word % 4, lambda word: 0, max_ticks=2000)
    for peer in (host, joiner):
        assert peer.outcome.result == "desync"
        assert 150 <= peer.outcome.desync.frame <= 152


@pytest.mark.parametrize("distance", [1, 2, 7])
def test_synctest_passes_on_the_tiny_game(distance):
    frame_inputs = [(f * 5 + f // 7) % 16 for f in range(400)]
    result = run_synctest(lambda: TinyGame(3), frame_inputs, distance)
    assert result.ok and result.frames == 400
    assert result.final_chain == reference_chains(3, frame_inputs)[-1]


def test_synctest_catches_a_tiny_game_whose_restore_forgets_its_word():
    class Leaky(TinyGame):
        def restore(self, snapshot):
            word = self.word
            super().restore(snapshot)
            self.word = word

    result = run_synctest(lambda: Leaky(3), [1, 2, 3] * 100, 4)
    assert not result.ok and result.first_bad_frame == 1
