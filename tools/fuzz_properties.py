"""The determinism properties as hypothesis tests that run anywhere: `pong fuzz`, pytest, HypoFuzz.

Each property is a plain function (its *body*) plus the strategies of its arguments, or a
`RuleBasedStateMachine`. `GivenProperty.test(settings)` turns a body into a `@given` test that can
be called directly, outside pytest; every executed example goes through `count()`, so a campaign
knows honestly how many examples it ran. Bodies must not mutate their arguments: the arguments of
the minimal failing example are written out as a regression test.

This module lives under `tools/` (installed with the package), not under `tests/`, so that
`pong fuzz` works from an installed `pong`; it needs hypothesis, which the `test` and `fuzz`
extras bring.
"""

from __future__ import annotations

import functools
import os
import tempfile
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hypothesis import given
from hypothesis import settings as Settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from lockstep.bots import make_bot
from lockstep.chain import CHAIN_SIZE
from lockstep.codec import STATE_SIZE, decode, encode
from lockstep.game import Game
from lockstep.rules import UNIT, Rules, rules_id
from lockstep.state import FIELDS, State
from lockstep.synctest import run_synctest
from peer.errors import RemoteProtocolError
from peer.match import MatchPeer
from peer.messages import (
    PROTOCOL_VERSION,
    REASONS,
    Auth,
    ChainCheck,
    Challenge,
    Decoder,
    Goodbye,
    Hello,
    Input,
    Message,
    Netcode,
    Ping,
    Pong,
    Purpose,
    Refuse,
    Welcome,
)
from peer.messages import encode as encode_message
from peer.pair import make_pair, take_seat_back
from peer.protocol import Phase
from replay.format import CRC, RECORD_HEAD, TAG_CHUNK, ReplayCorruptError, ReplayError
from replay.reader import parse_replay
from replay.verify import verify_replay
from replay.writer import ReplayWriter

# --- counting ------------------------------------------------------------------------------------

COUNTS: Counter[str] = Counter()  # examples executed per property, in this process
_observers: list[Callable[[str], None]] = []


def count(name: str) -> None:
    """Called at the start of every example of property `name` (inside its body).

    An observer (the campaign runner) may raise here, before the example is counted, to stop a
    run when its time is up.
    """
    for observer in _observers:
        observer(name)
    COUNTS[name] += 1


def add_observer(observer: Callable[[str], None]) -> None:
    _observers.append(observer)


def remove_observer(observer: Callable[[str], None]) -> None:
    if observer in _observers:
        _observers.remove(observer)


# --- the two kinds of property -------------------------------------------------------------------


class Property:
    """A named property that can be run as a hypothesis test under given settings."""

    name: str
    summary: str
    imports: tuple[str, ...]  # import lines a regression test needs (besides the property itself)

    def test(self, settings: Settings) -> Callable[[], None]:
        raise NotImplementedError

    def reset(self) -> None:
        """Forget the failing example of a previous run."""


@dataclass(eq=False)
class GivenProperty(Property):
    """A body `f(**arguments)` that raises on a counterexample, and a strategy per argument."""

    name: str
    summary: str
    body: Callable[..., None]
    strategies: Mapping[str, st.SearchStrategy[Any]]
    imports: tuple[str, ...] = ()
    failing_arguments: dict[str, Any] | None = field(default=None, repr=False)

    def test(self, settings: Settings) -> Callable[[], None]:
        body = self.body

        @functools.wraps(body)  # the example database key follows the body's source
        def run_one_example(**arguments: Any) -> None:
            count(self.name)
            try:
                body(**arguments)
            except Exception:
                # Hypothesis runs the minimal failing example last, so the last one kept is it.
                self.failing_arguments = dict(arguments)
                raise

        runnable: Callable[[], None] = given(**self.strategies)(settings(run_one_example))
        return runnable

    def reset(self) -> None:
        self.failing_arguments = None


class CountedMachine(RuleBasedStateMachine):
    """A state machine whose every run counts as one example of the property `fuzz_name`."""

    fuzz_name = "machine"

    def __init__(self) -> None:
        count(self.fuzz_name)
        super().__init__()


@dataclass(eq=False)
class MachineProperty(Property):
    name: str
    summary: str
    machine: type[CountedMachine]
    imports: tuple[str, ...] = ()

    def test(self, settings: Settings) -> Callable[[], None]:
        from hypothesis.stateful import run_state_machine_as_test

        machine = self.machine

        def run() -> None:
            run_state_machine_as_test(machine, settings=settings)

        return run


# --- strategies ----------------------------------------------------------------------------------

seeds = st.integers(0, 2**64 - 1)


def holds(max_runs: int) -> st.SearchStrategy[list[tuple[int, int]]]:
    """Frame inputs as runs: (packed input 0..15, frames held 1..90), as people press keys."""
    return st.lists(st.tuples(st.integers(0, 15), st.integers(1, 90)), max_size=max_runs)


def expand(runs: Sequence[tuple[int, int]]) -> list[int]:
    return [frame_input for frame_input, frames in runs for _ in range(frames)]


varied_rules = st.builds(
    Rules,
    paddle_h=st.integers(16, 120).map(lambda px: px * UNIT),
    paddle_speed=st.integers(1, 12 * UNIT),
    ball_speed_start=st.integers(1 * UNIT, 6 * UNIT),
    ball_speed_step=st.integers(0, UNIT),
    ball_speed_max=st.integers(6 * UNIT, 150 * UNIT),
    bounce_vy_max=st.integers(3 * UNIT, 12 * UNIT),
    serve_vy_max=st.integers(0, 3 * UNIT),
    serve_delay_frames=st.integers(0, 90),
    points_to_win=st.integers(1, 15),
    frame_limit=st.integers(0, 3000),
)
# The default match, an endless one (every frame is live play), and odd ones.
rules_strategy = st.one_of(st.just(Rules(points_to_win=999)), st.just(Rules()), varied_rules)

RULES_IMPORT = "from lockstep.rules import Rules"

# --- simulation ----------------------------------------------------------------------------------


def check_same_seed_and_inputs_give_the_same_chain(
    rules: Rules, seed: int, runs: list[tuple[int, int]]
) -> None:
    inputs = expand(runs)
    a, b = Game(rules, seed), Game(rules, seed)
    chains = [a.advance(frame_input) for frame_input in inputs]
    assert b.run(inputs) == a.chain, "same seed and inputs, different chain"
    assert a.state == b.state, f"same seed and inputs, different states: {a.state} != {b.state}"
    assert not chains or chains[-1] == a.chain, "advance() and the chain disagree"


def check_states_stay_within_their_invariants(rules: Rules, seed: int, runs: list[tuple[int, int]]) -> None:
    game = Game(rules, seed)
    for frame_input in expand(runs):
        prev = game.state.copy()
        game.advance(frame_input)
        state = game.state
        for name in FIELDS:
            assert type(getattr(state, name)) is int, name
        assert 0 <= state.paddle_l <= rules.field_h - rules.paddle_h, f"left paddle off the field: {state}"
        assert 0 <= state.paddle_r <= rules.field_h - rules.paddle_h, f"right paddle off the field: {state}"
        assert 0 <= state.ball_y <= rules.field_h - rules.ball_size, f"ball off the field: {state}"
        assert -rules.ball_size < state.ball_x < rules.field_w, f"ball past a side wall: {state}"
        assert abs(state.ball_vx) <= rules.ball_speed_max, f"ball too fast: {state}"
        assert abs(state.ball_vy) <= rules.bounce_vy_max, f"ball too steep: {state}"
        assert state.frame == prev.frame + 1, f"frame {prev.frame} stepped to {state.frame}"
        points = state.score_l + state.score_r - prev.score_l - prev.score_r
        assert 0 <= points <= 1, f"{points} points in one frame: {prev} -> {state}"
        reached_points = max(state.score_l, state.score_r) >= rules.points_to_win
        reached_limit = rules.frame_limit and state.frame >= rules.frame_limit
        assert bool(state.over) == bool(reached_points or reached_limit), f"wrong game-over flag: {state}"


def check_restore_then_continue_gives_the_same_chain(
    rules: Rules, seed: int, runs: list[tuple[int, int]], save_at: int, check_distance: int
) -> None:
    inputs = expand(runs)
    save_at %= len(inputs) + 1
    straight = Game(rules, seed)
    straight.run(inputs)

    game = Game(rules, seed)
    game.run(inputs[:save_at])
    snapshot = game.save()
    game.run(inputs[save_at:])  # moves past the snapshot: the snapshot must not change
    other = Game(rules, seed ^ 1)
    other.restore(snapshot)
    other.run(inputs[save_at:])
    assert other.chain == straight.chain == game.chain, "restore, then continue: another chain"
    assert other.state == straight.state, f"restore, then continue: {other.state} != {straight.state}"

    result = run_synctest(lambda: Game(rules, seed), inputs, check_distance)
    assert result.ok, f"synctest: re-simulation diverged first at frame {result.first_bad_frame}"
    assert result.final_chain == straight.chain, "synctest ended on another chain than a straight run"


# --- encode / decode -----------------------------------------------------------------------------

_i64 = st.integers(-(1 << 63), (1 << 63) - 1)
state_fields = st.tuples(
    *[
        st.integers(0, (1 << 64) - 1) if f == "rng" else st.integers(0, 1) if f == "over" else _i64
        for f in FIELDS
    ]
)


def check_decode_inverts_encode(fields: tuple[int, ...], seed: int, runs: list[tuple[int, int]]) -> None:
    state = State(*fields)
    data = encode(state)
    assert len(data) == STATE_SIZE, f"encoded state of {len(data)} bytes"
    assert decode(data) == state, f"decode(encode(s)) != s for {state}"
    game = Game(Rules(points_to_win=999), seed)
    game.run(expand(runs))
    assert decode(encode(game.state)) == game.state, f"decode(encode(s)) != s for {game.state}"


# --- the wire protocol ---------------------------------------------------------------------------

_names = st.text(max_size=10)
_chains = st.binary(min_size=8, max_size=8)
_reasons = st.sampled_from(REASONS)
_u32 = st.integers(0, 2**32 - 1)
messages = st.one_of(
    st.builds(
        Hello,
        st.just(PROTOCOL_VERSION),
        st.just(rules_id(Rules())),
        st.binary(min_size=16, max_size=16),
        _names,
        st.sampled_from(Purpose),
        st.binary(max_size=16),
        _u32,
    ),
    st.builds(Challenge, st.binary(min_size=16, max_size=16), st.booleans(), st.binary(max_size=32)),
    st.builds(Auth, st.binary(max_size=32)),
    st.builds(
        Welcome,
        seeds,
        st.integers(0, 30),
        st.integers(0, 1),
        st.just(rules_id(Rules())),
        _u32,
        _names,
        st.binary(min_size=16, max_size=16),
        _u32,
        st.sampled_from(Netcode),
    ),
    st.builds(Refuse, _reasons, _names),
    st.builds(Input, st.integers(0, 3), st.integers(0, 2**16 - 1), st.integers(0, 31)),
    st.builds(ChainCheck, seeds, _chains),
    st.builds(Ping, _u32),
    st.builds(Pong, _u32),
    st.builds(Goodbye, _reasons, seeds, _chains, _names),
)
MESSAGES_IMPORT = (
    "from peer.messages import (\n"
    "    Auth, ChainCheck, Challenge, Goodbye, Hello, Input, Ping, Pong, Refuse, Welcome,\n"
    ")"
)


def _decode_in_pieces(data: bytes, cuts: Sequence[int]) -> list[Message]:
    decoder = Decoder()
    out: list[Message] = []
    start = 0
    for cut in [*sorted(c % (len(data) + 1) for c in cuts), len(data)]:
        decoder.feed(data[start:cut])
        start = cut
        while (message := decoder.next_message()) is not None:
            out.append(message)
    assert decoder.buffered == 0, "bytes left over after a whole stream"
    return out


def check_any_bytes_give_messages_or_a_remote_protocol_error(junk: bytes, cuts: list[int]) -> None:
    decoder = Decoder()
    start = 0
    for cut in [*sorted(c % (len(junk) + 1) for c in cuts), len(junk)]:
        decoder.feed(junk[start:cut])
        start = cut
        try:
            while decoder.next_message() is not None:
                pass
        except RemoteProtocolError as exc:
            assert str(exc), "a RemoteProtocolError must say what is wrong"
            return


def check_any_split_of_a_stream_decodes_to_the_same_messages(stream: list[Message], cuts: list[int]) -> None:
    blob = b"".join(encode_message(m) for m in stream)
    assert _decode_in_pieces(blob, []) == stream, "a stream decodes to other messages"
    assert _decode_in_pieces(blob, cuts) == stream, "a stream decodes to other messages when split"


# --- two peers over an unruly link ---------------------------------------------------------------


class _Recorder:
    def __init__(self, peer: MatchPeer) -> None:
        self.peer = peer
        self.inputs: list[int] = []
        self.chains: list[bytes] = []

    def take(self) -> None:
        for event in self.peer.take_frames():
            self.inputs.append(event.frame_input)
            self.chains.append(event.chain)


RECONNECT_MS = 20_000


class TwoPeersMachine(CountedMachine):
    """Two peers in memory, random pacing, a link that splits, merges and holds back bytes, and
    breaks now and then (the joiner then takes its seat back); in lockstep or rollback (any max
    rollback, 0 included).

    Invariant: both sides confirm the same inputs and the same chains, and memory stays bounded.
    At the end the rest of the match is played out, and both ends must tell the same story: a
    finished match with equal final chains, a desync (when one was injected) named within two
    frames of it on both sides, or a quit.
    """

    fuzz_name = "two_peers"

    @initialize(
        seed=st.integers(0, 2**32),
        delay=st.integers(0, 6),
        frames=st.integers(60, 600),
        desync=st.one_of(st.none(), st.tuples(st.integers(0, 1), st.integers(1, 700))),
        netcode=st.sampled_from(Netcode),
        max_rollback=st.integers(0, 10),
        reconnect=st.booleans(),
    )
    def start(
        self,
        seed: int,
        delay: int,
        frames: int,
        desync: tuple[int, int] | None,
        netcode: Netcode,
        max_rollback: int,
        reconnect: bool,
    ) -> None:
        rules = Rules(points_to_win=99, frame_limit=frames)
        side, at = desync if desync is not None else (0, None)
        self.host, self.joiner = make_pair(
            rules,
            seed,
            delay_frames=delay,
            host_desync_at=at if side == 0 else None,
            joiner_desync_at=at if side == 1 else None,
            netcode=netcode,
            max_rollback=max_rollback,
            reconnect_ms=RECONNECT_MS if reconnect else 0,
        )
        self.reconnect = reconnect
        self.drops = 0
        self.frames = frames
        self.desync_at = at
        self.quitter: int | None = None
        self.inputs = (make_bot("tracker", rules, 0).decide, make_bot("random", rules, 1, seed).decide)
        self.pending = (bytearray(), bytearray())  # bytes in flight toward host, toward joiner
        self.records = (_Recorder(self.host), _Recorder(self.joiner))
        self.now = 0

    def _peers(self) -> tuple[MatchPeer, MatchPeer]:
        return (self.host, self.joiner)

    @rule(which=st.integers(0, 1), ms=st.integers(0, 40))
    def tick(self, which: int, ms: int) -> None:
        self.now += ms
        peer = self._peers()[which]
        peer.update(self.now, self.inputs[which])
        self.pending[1 - which].extend(peer.data_to_send())
        self.records[which].take()

    @rule(which=st.integers(0, 1), fraction=st.integers(0, 100))
    def deliver_part(self, which: int, fraction: int) -> None:
        """Deliver a prefix of what is in flight toward one side: splits and merges messages."""
        buf = self.pending[which]
        size = len(buf) * fraction // 100
        if size:
            chunk = bytes(buf[:size])
            del buf[:size]
            self._peers()[which].receive_data(chunk, self.now)

    @rule(ticks=st.integers(1, 40), ms=st.integers(0, 34), hold_percent=st.integers(0, 100))
    def play_a_while(self, ticks: int, ms: int, hold_percent: int) -> None:
        """Both peers tick in turn; of what each just sent, a part stays in flight one more turn."""
        for _ in range(ticks):
            for which in (0, 1):
                buf = self.pending[1 - which]
                old = len(buf)
                self.tick(which, ms)
                size = old + (len(buf) - old) * (100 - hold_percent) // 100
                if size:
                    chunk = bytes(buf[:size])
                    del buf[:size]
                    self._peers()[1 - which].receive_data(chunk, self.now)

    @precondition(lambda self: self.reconnect)
    @rule(chance=st.integers(0, 9))
    def drop(self, chance: int) -> None:
        """The link breaks now and then: what is in flight is lost, both sides see it end."""
        if chance:
            return
        for buf in self.pending:
            buf.clear()
        for peer in self._peers():
            peer.receive_data(b"", self.now)
        self.drops += 1

    @precondition(lambda self: self.host.lost or self.joiner.lost)
    @rule()
    def take_seat_back(self) -> None:
        """The joiner redials and takes its seat back over new connections."""
        for buf in self.pending:
            buf.clear()  # the old connections' bytes never arrive over the new ones
        take_seat_back(self.host, self.joiner, self.now, None, self.drops)

    @precondition(lambda self: self.quitter is None)
    @rule(which=st.integers(0, 1), chance=st.integers(0, 29))
    def quit(self, which: int, chance: int) -> None:
        """One player leaves, now and then (most runs should play to their end)."""
        if chance:
            return
        self.quitter = which
        self._peers()[which].quit(self.now)
        self.pending[1 - which].extend(self._peers()[which].data_to_send())

    @invariant()
    def both_agree(self) -> None:
        if not hasattr(self, "host"):
            return
        h, j = self.records
        common = min(len(h.inputs), len(j.inputs))
        assert h.inputs[:common] == j.inputs[:common], "the peers confirmed different inputs"
        if self.desync_at is None:
            assert h.chains[:common] == j.chains[:common], "the peers computed different chains"
        for peer in self._peers():
            outcome = peer.outcome
            allowed = {"finished", "peer_timeout", "handshake_timeout", "quit", "desync"}
            assert outcome is None or outcome.result in allowed, outcome
            if outcome is not None and outcome.result == "desync":
                assert self.desync_at is not None, f"a desync nobody caused: {outcome}"

    def teardown(self) -> None:
        if not hasattr(self, "host"):
            return
        # Play out the rest on a clean link: everything in flight arrives, in order.
        for _ in range(4 * self.frames + 2000):
            if self.host.finished and self.joiner.finished:
                break
            if self.host.lost or self.joiner.lost:
                self.take_seat_back()
            self.now += 16
            for which in (0, 1):
                peer, other = self._peers()[which], self._peers()[1 - which]
                if self.pending[1 - which]:
                    chunk = bytes(self.pending[1 - which])
                    self.pending[1 - which].clear()
                    other.receive_data(chunk, self.now)
                peer.update(self.now, self.inputs[which])
                self.pending[1 - which].extend(peer.data_to_send())
                self.records[which].take()
        for which in (0, 1):  # the last goodbyes
            if self.pending[which]:
                self._peers()[which].receive_data(bytes(self.pending[which]), self.now + 1)
        host, joiner = self.host.outcome, self.joiner.outcome
        assert host is not None and joiner is not None, f"the match never ended: {host} / {joiner}"
        results = {host.result, joiner.result}
        if results & {"peer_timeout", "handshake_timeout"}:
            return  # the run's own pacing starved a side for 5 s: a legitimate end, nothing to compare
        if self.quitter is not None and "quit" in results:
            assert results <= {"quit", "finished", "desync"}, (host, joiner)
            return
        if "desync" in results:
            assert self.desync_at is not None, (host, joiner)
            assert results == {"desync"}, f"only one side saw the desync: {host} / {joiner}"
            for outcome in (host, joiner):
                assert outcome.desync is not None
                assert self.desync_at <= outcome.desync.frame <= self.desync_at + 2, outcome
            return
        assert results == {"finished"}, (host, joiner)
        assert host.final_chain == joiner.final_chain and host.frames == joiner.frames == self.frames
        assert self.desync_at is None or self.desync_at > self.frames, "an injected desync went unseen"

    @precondition(lambda self: self.host.engine is not None and self.joiner.engine is not None)
    @invariant()
    def memory_stays_bounded(self) -> None:
        for peer in self._peers():
            assert peer.engine is not None
            engine = peer.engine
            held = engine.remote_inputs_held() - engine.frame
            assert held <= engine.max_ahead + 1, "remote inputs beyond the limit"
            # Once the match runs, a connection in its handshake is one taking a seat back.
            phases = (Phase.PLAYING, Phase.CLOSING, Phase.ENDED)
            assert peer.lost or peer.connection.phase in phases, peer.connection.phase


# --- replays -------------------------------------------------------------------------------------

END_REASONS = [None, "finished", "quit", "desync", "peer_timeout", "protocol_error"]


def _record(
    rules: Rules, seed: int, inputs: list[int], chunk_frames: int, end_reason: str | None
) -> tuple[bytes, list[bytes]]:
    """A replay of `inputs` as the real writer writes it, and the chain after every frame."""
    game = Game(rules, seed)
    chains = [game.chain]
    with tempfile.TemporaryDirectory(prefix="pong-fuzz-") as tmp:
        path = os.path.join(tmp, "fuzz.replay")
        with ReplayWriter(path, rules, seed, 2, ("left", "right"), 0, chunk_frames=chunk_frames) as writer:
            for frame_input in inputs:
                chains.append(game.advance(frame_input))
                writer.add_frame(frame_input, chains[-1])
            if end_reason is not None:
                writer.finish(end_reason)
        with open(path, "rb") as file:
            return file.read(), chains


def _record_ends(data: bytes, header_end: int) -> list[tuple[int, int]]:
    """(end offset, frames after it) of every chunk record of a well-formed replay."""
    ends = []
    pos, frames = header_end, 0
    while pos < len(data):
        tag, length, _ = RECORD_HEAD.unpack_from(data, pos)
        pos += RECORD_HEAD.size + length + CRC.size
        if tag == TAG_CHUNK:
            frames += length - CHAIN_SIZE
            ends.append((pos, frames))
    return ends


def check_replay_round_trip(
    rules: Rules,
    seed: int,
    runs: list[tuple[int, int]],
    chunk_frames: int,
    end_reason: str | None,
) -> None:
    inputs = expand(runs)
    data, chains = _record(rules, seed, inputs, chunk_frames, end_reason)
    replay = parse_replay(data, "fuzz")
    assert (replay.rules, replay.seed, replay.chunk_frames) == (rules, seed, chunk_frames), (
        "header fields differ"
    )
    assert replay.frame_inputs == bytes(inputs), "the inputs read back differ"
    expected = [(f, chains[f]) for f in range(chunk_frames, len(inputs) + 1, chunk_frames)]
    if len(inputs) % chunk_frames:
        expected.append((len(inputs), chains[-1]))
    assert replay.checkpoints == expected, "the checkpoints read back differ"
    assert replay.truncated == (end_reason is None), f"truncated={replay.truncated} for end {end_reason!r}"
    if end_reason is not None:
        assert replay.footer is not None and replay.footer.final_chain == chains[-1], "footer chain differs"
        assert replay.footer.end_reason == end_reason, f"end reason {replay.footer.end_reason!r}"
    result = verify_replay(replay)
    assert result.ok and result.final_chain == chains[-1] and result.frames == len(inputs), (
        f"verify: {result}"
    )


def check_truncated_replay_yields_its_intact_prefix(
    seed: int, runs: list[tuple[int, int]], chunk_frames: int, finished: bool, cut: int
) -> None:
    inputs = expand(runs)
    data, chains = _record(Rules(points_to_win=999), seed, inputs, chunk_frames, "quit" if finished else None)
    cut %= len(data) + 1
    whole = parse_replay(data, "whole")
    if cut < whole.header_bytes:
        try:
            parse_replay(data[:cut], "cut")
        except ReplayCorruptError as exc:
            raise AssertionError(f"a cut inside the header is reported as corruption: {exc}") from None
        except ReplayError:
            return
        raise AssertionError("a cut inside the header was read as a replay")
    replay = parse_replay(data[:cut], "cut")
    frames = max([f for end, f in _record_ends(data, whole.header_bytes) if end <= cut], default=0)
    assert replay.frame_inputs == bytes(inputs[:frames]), "not the intact prefix"
    assert replay.truncated == (cut < len(data) or not finished), f"truncated={replay.truncated} at {cut}"
    result = verify_replay(replay)
    assert result.ok and result.final_chain == chains[frames], f"the intact prefix does not verify: {result}"


def check_any_flipped_byte_is_detected(
    seed: int, runs: list[tuple[int, int]], chunk_frames: int, finished: bool, position: int, mask: int
) -> None:
    inputs = expand(runs)
    data, _ = _record(Rules(points_to_win=999), seed, inputs, chunk_frames, "quit" if finished else None)
    bad = bytearray(data)
    bad[position % len(data)] ^= mask
    try:
        parse_replay(bytes(bad), "flipped")
    except ReplayCorruptError as exc:
        assert str(exc), "a corruption error must say what is wrong"
        return
    raise AssertionError(f"a flipped byte at offset {position % len(data)} went unnoticed")


# --- the list ------------------------------------------------------------------------------------

chunk_frames = st.integers(1, 100)

PROPERTIES: tuple[Property, ...] = (
    GivenProperty(
        "sim_determinism",
        "same rules, seed and inputs give the same chain",
        check_same_seed_and_inputs_give_the_same_chain,
        {"rules": rules_strategy, "seed": seeds, "runs": holds(60)},
        (RULES_IMPORT,),
    ),
    GivenProperty(
        "state_invariants",
        "states hold only ints and stay within the field, speeds and scores",
        check_states_stay_within_their_invariants,
        {"rules": rules_strategy, "seed": seeds, "runs": holds(60)},
        (RULES_IMPORT,),
    ),
    GivenProperty(
        "save_restore",
        "restore any saved state and continue (and synctest) gives the same chain",
        check_restore_then_continue_gives_the_same_chain,
        {
            "rules": rules_strategy,
            "seed": seeds,
            "runs": holds(30),
            "save_at": st.integers(0, 3000),
            "check_distance": st.integers(1, 10),
        },
        (RULES_IMPORT,),
    ),
    GivenProperty(
        "codec_round_trip",
        "decode(encode(state)) == state, for any state and for played ones",
        check_decode_inverts_encode,
        {"fields": state_fields, "seed": seeds, "runs": holds(30)},
    ),
    GivenProperty(
        "decoder_junk",
        "any bytes, in any pieces, give messages or a RemoteProtocolError, never another exception",
        check_any_bytes_give_messages_or_a_remote_protocol_error,
        {"junk": st.binary(max_size=400), "cuts": st.lists(st.integers(0, 400), max_size=20)},
    ),
    GivenProperty(
        "decoder_any_split",
        "any split of a valid byte stream decodes to the same messages",
        check_any_split_of_a_stream_decodes_to_the_same_messages,
        {"stream": st.lists(messages, max_size=20), "cuts": st.lists(st.integers(0, 2000), max_size=30)},
        (MESSAGES_IMPORT,),
    ),
    MachineProperty(
        "two_peers",
        "two peers over a link that splits, merges and delays bytes confirm the same inputs and chains",
        TwoPeersMachine,
    ),
    GivenProperty(
        "replay_round_trip",
        "a written replay reads back with its inputs and checkpoints, and verifies",
        check_replay_round_trip,
        {
            "rules": rules_strategy,
            "seed": seeds,
            "runs": holds(20),
            "chunk_frames": chunk_frames,
            "end_reason": st.sampled_from(END_REASONS),
        },
        (RULES_IMPORT,),
    ),
    GivenProperty(
        "replay_truncation",
        "a replay cut at any offset yields its intact prefix, which verifies",
        check_truncated_replay_yields_its_intact_prefix,
        {
            "seed": seeds,
            "runs": holds(12),
            "chunk_frames": chunk_frames,
            "finished": st.booleans(),
            "cut": st.integers(0, 1 << 16),
        },
    ),
    GivenProperty(
        "replay_corruption",
        "any flipped byte of a replay is detected as corruption",
        check_any_flipped_byte_is_detected,
        {
            "seed": seeds,
            "runs": holds(12),
            "chunk_frames": chunk_frames,
            "finished": st.booleans(),
            "position": st.integers(0, 1 << 16),
            "mask": st.integers(1, 255),
        },
    ),
)


def by_name(names: Sequence[str]) -> list[Property]:
    """The properties named (all when `names` is empty); raises KeyError naming an unknown one."""
    if not names:
        return list(PROPERTIES)
    known = {p.name: p for p in PROPERTIES}
    return [known[name] for name in names]
