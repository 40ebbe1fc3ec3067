"""Two peers in one process: full matches, desyncs, misbehaving peers, and a stateful machine."""

from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from lockstep.bots import make_bot
from lockstep.game import Game
from lockstep.rules import Rules
from peer.match import MatchPeer
from peer.messages import encode_input
from peer.pair import make_pair, run_pair
from peer.protocol import Phase

RULES = Rules(points_to_win=3)


def bots(seed=0):
    return make_bot("tracker", RULES, 0).decide, make_bot("random", RULES, 1, seed).decide


class Recorder:
    """Collects each side's frames, as the replay writer will."""

    def __init__(self, peer: MatchPeer):
        self.peer = peer
        self.inputs: list[int] = []
        self.chains: list[bytes] = []

    def take(self):
        for event in self.peer.take_frames():
            self.inputs.append(event.frame_input)
            self.chains.append(event.chain)


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


class TwoPeersOverAnUnrulyLink(RuleBasedStateMachine):
    """Random pacing and a link that splits, merges and holds back bytes; the games must agree."""

    @initialize(seed=st.integers(0, 2**32), delay=st.integers(0, 6))
    def start(self, seed, delay):
        self.host, self.joiner = make_pair(Rules(points_to_win=99), seed, delay_frames=delay)
        self.inputs = {id(self.host): bots(seed)[0], id(self.joiner): bots(seed)[1]}
        self.pending = {id(self.host): bytearray(), id(self.joiner): bytearray()}  # bytes toward each
        self.records = {id(self.host): Recorder(self.host), id(self.joiner): Recorder(self.joiner)}
        self.now = 0

    def peers(self):
        return (self.host, self.joiner)

    @rule(which=st.integers(0, 1), ms=st.integers(0, 40))
    def tick(self, which, ms):
        self.now += ms
        peer = self.peers()[which]
        peer.update(self.now, self.inputs[id(peer)])
        other = self.peers()[1 - which]
        self.pending[id(other)] += peer.data_to_send()
        self.records[id(peer)].take()

    @rule(which=st.integers(0, 1), fraction=st.integers(0, 100))
    def deliver_part(self, which, fraction):
        """Deliver a prefix of what is in flight: splits and merges messages anywhere."""
        peer = self.peers()[which]
        buf = self.pending[id(peer)]
        count = len(buf) * fraction // 100
        if count:
            chunk = bytes(buf[:count])
            del buf[:count]
            peer.receive_data(chunk, self.now)

    @rule(ticks=st.integers(1, 40), ms=st.integers(0, 34), hold_percent=st.integers(0, 100))
    def play_a_while(self, ticks, ms, hold_percent):
        """Both peers tick in turn; of what each just sent, a part stays in flight one more turn."""
        for _ in range(ticks):
            for which in (0, 1):
                buf = self.pending[id(self.peers()[1 - which])]
                old = len(buf)
                self.tick(which, ms)
                count = old + (len(buf) - old) * (100 - hold_percent) // 100
                if count:
                    chunk = bytes(buf[:count])
                    del buf[:count]
                    self.peers()[1 - which].receive_data(chunk, self.now)

    @invariant()
    def both_agree(self):
        h, j = self.records[id(self.host)], self.records[id(self.joiner)]
        common = min(len(h.inputs), len(j.inputs))
        assert h.inputs[:common] == j.inputs[:common]
        assert h.chains[:common] == j.chains[:common]
        for peer in self.peers():
            assert peer.outcome is None or peer.outcome.result != "desync", peer.outcome
            if peer.outcome is not None:
                assert peer.outcome.result in ("finished", "peer_timeout", "handshake_timeout")

    @precondition(lambda self: self.host.engine is not None and self.joiner.engine is not None)
    @invariant()
    def memory_stays_bounded(self):
        for peer in self.peers():
            assert len(peer.engine._remote) <= peer.engine.max_ahead + 1
            assert peer.connection.phase in (Phase.PLAYING, Phase.CLOSING, Phase.ENDED)


TwoPeersOverAnUnrulyLink.TestCase.settings = settings(max_examples=40, stateful_step_count=60, deadline=None)
test_two_peers_over_an_unruly_link = TwoPeersOverAnUnrulyLink.TestCase
