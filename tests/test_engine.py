"""The lockstep engine alone: delay, neutral frames, waiting, chain checks, bounded memory."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

import lockstep
from lockstep import Engine
from lockstep.engine import (
    CHAIN_BITS,
    NO_CHECK_LAG,
    ChainToSend,
    DesyncDetected,
    FrameAdvanced,
    RemoteAheadError,
    auto_delay,
    chain_bits,
)
from lockstep.game import Game, Snapshot
from lockstep.inputs import pack
from lockstep.rules import Rules
from peer.perturb import PerturbedGame

RULES = Rules(points_to_win=999)


def pong(delay, slot, seed=1, **options):
    return Engine(Game(RULES, seed), delay, slot, **options)


def frames_of(events):
    return [e for e in events if isinstance(e, FrameAdvanced)]


def test_frames_below_the_delay_run_on_neutral_input_one_local_sample_each():
    engine = pong(4, 0)
    assert engine.advance() == []  # frame 0 runs only once the input for frame 4 is sampled
    advanced = []
    for tick in range(4):
        assert engine.add_local_input(1).frame == 4 + tick
        advanced += frames_of(engine.advance())
    assert [e.frame for e in advanced] == [1, 2, 3, 4]
    assert all(e.frame_input == 0 for e in advanced)
    engine.add_local_input(1)
    assert engine.advance() == [] and engine.waiting_for_remote()  # frame 4 needs the peer's input


def bits_for(engine, input_frame):
    """The chain bits an honest peer in the same game sends with its input for `input_frame`."""
    return chain_bits(engine.chain_at(input_frame - engine.delay))


def test_a_frame_waits_for_both_inputs_and_packs_them_by_slot():
    engine = pong(2, 1)
    for _ in range(2):
        engine.add_local_input(0)
        engine.advance()
    sent = engine.add_local_input(1)
    assert sent.frame == 4 and engine.frame == 2
    assert engine.waiting_for_remote() and engine.advance() == []
    engine.add_remote_input(2, bits_for(engine, 2))
    (event,) = frames_of(engine.advance())
    assert event.frame == 3 and event.frame_input == pack(2, 0)  # local input of frame 2 was neutral
    assert engine.desync is None


def test_local_input_applies_d_frames_later_and_carries_the_chain_of_its_frame():
    delay = 3
    engine = pong(delay, 0)
    reference = Game(RULES, 1)
    expected_chains = [reference.chain]
    applied = {}
    for tick in range(60):
        # One input per tick, sampled while the simulation stands at frame `engine.frame`.
        sampled_at = engine.frame
        sent = engine.add_local_input(tick % 4)
        assert sent.frame == sampled_at + delay
        assert sent.chain_bits == chain_bits(engine.chain_at(sampled_at))
        applied[sent.frame] = tick % 4
        if engine.frame >= delay:
            engine.add_remote_input(0, bits_for(engine, engine.frame))
        engine.advance()
    for f in range(engine.frame):
        expected_chains.append(reference.advance(pack(applied.get(f, 0), 0)))
    assert [engine.chain_at(f) for f in range(engine.frame - 20, engine.frame + 1)] == expected_chains[-21:]


def test_inputs_too_far_ahead_are_refused_and_memory_stays_bounded():
    engine = pong(2, 0)
    with pytest.raises(RemoteAheadError, match="ahead"):
        for _ in range(10_000):
            engine.add_remote_input(1, 0)
    assert engine.remote_inputs_held() == engine.frame + engine.max_ahead + 1


def test_history_is_trimmed_during_a_long_match():
    engine = pong(1, 0)
    for _ in range(5000):
        engine.add_local_input(0)
        engine.add_remote_input(0, bits_for(engine, engine.frame + 1))
        engine.advance()
    assert engine.desync is None and engine.frame > 4990
    kept = max(120, engine.max_ahead + 1)
    oldest = engine.frame - kept + 1
    assert engine.chain_at(oldest) is not None and engine.snapshot_at(oldest) is not None
    assert engine.chain_at(oldest - 1) is None and engine.snapshot_at(oldest - 1) is None
    assert engine.pending_checks() == 0


def drive_pair(delay, frames, perturb_at=None, chain_every=60):
    """Two engines exchanging inputs immediately; returns both engines."""
    a = pong(delay, 0, 7, chain_every=chain_every)
    b_game = Game(RULES, 7) if perturb_at is None else PerturbedGame(RULES, 7, perturb_at)
    b = Engine(b_game, delay, 1, chain_every=chain_every)
    for f in range(frames):
        for me, other in ((a, b), (b, a)):
            if me.needs_local_input():
                sent = me.add_local_input((f * 7 + me.local_slot) % 4)
                other.add_remote_input(sent.player_input, sent.chain_bits)
        for me, other in ((a, b), (b, a)):
            for event in me.advance():
                if isinstance(event, ChainToSend):
                    other.add_remote_chain(event.frame, event.chain)
        if a.desync and b.desync:
            break
    return a, b


def test_two_engines_agree_over_a_long_match():
    a, b = drive_pair(delay=3, frames=3000)
    assert a.desync is None and b.desync is None
    assert a.frame == b.frame > 2900
    assert a.game.chain == b.game.chain
    assert a.last_agreed_frame >= a.frame - 4


@given(st.integers(1, 1500), st.integers(0, 8))
def test_a_divergence_at_frame_f_is_detected_by_both_within_two_frames(f, delay):
    a, b = drive_pair(delay=delay, frames=f + 40, perturb_at=f)
    for engine in (a, b):
        assert isinstance(engine.desync, DesyncDetected)
        assert f <= engine.desync.frame <= f + 2
        assert engine.desync.local != b"" and engine.desync.remote != b""


def test_full_chain_checks_catch_what_bits_alone_could_miss():
    engine = pong(2, 0, 7, chain_every=10)
    engine.advance()
    while engine.frame < 12:
        engine.add_local_input(0)
        engine.add_remote_input(0, bits_for(engine, engine.remote_inputs_held()))
        engine.advance()
    assert engine.desync is None
    engine.add_remote_chain(10, b"\x00" * 8)
    (event,) = engine.advance()
    assert isinstance(event, DesyncDetected) and event.frame == 10 and event.remote_bits == 64


def test_a_chain_check_ahead_of_us_waits_until_we_get_there():
    engine = pong(0, 0, 7)
    reference = Game(RULES, 7)
    engine.add_remote_chain(3, reference.run([0, 0, 0]))
    engine.add_remote_chain(4, b"bad chain")
    for frame in range(4):
        engine.add_local_input(0)
        engine.add_remote_input(0, bits_for(engine, frame))
        events = engine.advance()
    assert engine.last_agreed_frame == 3
    assert isinstance(events[-1], DesyncDetected) and events[-1].frame == 4


@pytest.mark.parametrize("rtt, delay", [(0, 1), (1, 2), (16, 2), (17, 3), (100, 7), (10_000, 30)])
def test_auto_delay_covers_the_round_trip_plus_one_frame(rtt, delay):
    assert auto_delay(rtt) == delay


def test_chain_bits_are_the_first_two_bytes_little_endian():
    assert CHAIN_BITS == 16
    assert chain_bits(bytes([0x34, 0x12, 0xFF, 0xFF, 0, 0, 0, 0])) == 0x1234


def _engine_at(frame, delay=2):
    """An engine that has simulated `frame` frames with neutral inputs and honest checks."""
    engine = pong(delay, 0, 3)
    while engine.frame < frame:
        engine.add_local_input(0)
        engine.add_remote_input(0, bits_for(engine, engine.remote_inputs_held()))
        engine.advance()
    return engine


@pytest.mark.parametrize("lag", [0, 1, 5, 30])
def test_a_remote_check_with_a_lag_names_the_frame_input_frame_minus_delay_minus_lag(lag):
    engine = _engine_at(40)
    assert engine.local_slot == 0 and engine.desync is None
    frame = engine.remote_inputs_held()
    checked = frame - engine.delay - lag
    # The right bits of that frame pass; wrong bits fail at the frame they name.
    assert engine.add_remote_input(0, chain_bits(engine.chain_at(checked)), lag) == frame
    assert engine.desync is None and engine.last_agreed_frame == max(checked, frame - 1 - engine.delay)
    next_lag = max(lag, 1)  # names a frame already simulated
    named = frame + 1 - engine.delay - next_lag
    wrong = chain_bits(engine.chain_at(named)) ^ 1
    engine.add_remote_input(0, wrong, next_lag)
    (event,) = engine.advance()
    assert isinstance(event, DesyncDetected) and event.frame == named
    assert event.remote == wrong.to_bytes(2, "little") and event.remote_bits == CHAIN_BITS


def test_an_input_without_a_check_is_never_checked():
    engine = _engine_at(40)
    for k in range(5):
        engine.add_remote_input(1, 0xFFFF ^ chain_bits(engine.chain_at(engine.frame - k)), NO_CHECK_LAG)
    assert engine.desync is None
    engine.add_remote_input(0, 0, 31)
    assert engine.remote_inputs_held() == engine.frame + engine.delay + 6
    with pytest.raises(ValueError, match="check lag"):
        engine.add_remote_input(0, 0, 32)


def test_local_inputs_carry_lag_zero_and_remote_inputs_held_counts_what_arrived():
    engine = pong(3, 1)
    assert engine.remote_inputs_held() == 3  # the neutral inputs below the delay
    sent = engine.add_local_input(2)
    assert (sent.frame, sent.player_input, sent.check_lag) == (3, 2, 0)
    assert engine.add_remote_input(1, sent.chain_bits) == 3
    assert engine.remote_inputs_held() == 4


def test_the_snapshot_of_a_frame_restores_that_frame_exactly():
    engine = _engine_at(50)
    snapshot = engine.snapshot_at(45)
    assert isinstance(snapshot, Snapshot) and snapshot.state.frame == 45
    game = Game(RULES, 99)
    game.restore(snapshot)
    assert (game.frame, game.chain) == (45, engine.chain_at(45))
    for frame, frame_input in engine.inputs_before(50, 5):
        assert game.frame == frame
        assert game.advance(frame_input) == engine.chain_at(frame + 1)
    assert game.state == engine.game.state


def test_the_package_exports_the_engine_and_every_name_it_lists():
    assert lockstep.Engine is Engine
    for name in lockstep.__all__:
        assert getattr(lockstep, name) is not None, name
    for name in ("Engine", "Simulation", "LocalInput", "FrameAdvanced", "ChainToSend", "DesyncDetected"):
        assert name in lockstep.__all__
    assert {"auto_delay", "MAX_DELAY_FRAMES", "RemoteAheadError", "NO_CHECK_LAG"} <= set(lockstep.__all__)
