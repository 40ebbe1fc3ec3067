"""Every row of the protocol's transition tables is legal, and every missing row is the peer's error.

Each state machine keeps its legal (state, message) pairs in one table; this walks all states times
all message types for the host handshake, the joiner handshake and the playing connection.
"""

import pytest

from lockstep.rules import Rules, rules_id
from peer.errors import RemoteProtocolError
from peer.handshake import (
    HOST_TRANSITIONS,
    JOINER_TRANSITIONS,
    Established,
    HostConfig,
    HostHandshake,
    HostState,
    JoinerConfig,
    JoinerHandshake,
    JoinerState,
    match_id,
)
from peer.messages import (
    PROTOCOL_VERSION,
    Auth,
    ChainCheck,
    Challenge,
    Chat,
    Frames,
    Goodbye,
    Hello,
    Input,
    MatchInfo,
    Netcode,
    Ping,
    Pong,
    Refuse,
    Watchers,
    Welcome,
    encode,
)
from peer.playing import PLAY_TRANSITIONS, PlayingConnection, PlayState
from peer.watching import (
    HOST_WATCH_TRANSITIONS,
    SPECTATOR_TRANSITIONS,
    HostWatch,
    MatchLog,
    SpectatorConnection,
    SpectatorState,
    WatchState,
)

HOST_NONCE, JOINER_NONCE = b"h" * 16, b"j" * 16
RULES = Rules(points_to_win=3)
NOW = 1000

SAMPLES = {
    Hello: Hello(PROTOCOL_VERSION, rules_id(Rules()), JOINER_NONCE, "Jo"),
    Challenge: Challenge(HOST_NONCE, False, b""),
    Auth: Auth(b""),
    Welcome: Welcome(7, 2, 1, rules_id(RULES), 10, "Hana", match_id(HOST_NONCE, JOINER_NONCE), 2),
    Refuse: Refuse("session_full", "full"),
    Input: Input(1, 0, 0),
    ChainCheck: ChainCheck(60, bytes(8)),
    Ping: Ping(NOW),
    Pong: Pong(NOW),
    Goodbye: Goodbye("quit", 10, bytes(8), "bye"),
    MatchInfo: MatchInfo(7, 2, rules_id(RULES), ("Hana", "Jo"), Netcode.LOCKSTEP, 0),
    Frames: Frames(0, bytes(3), bytes(8)),
    Chat: Chat("", "hello"),
    Watchers: Watchers(2),
}


def test_the_samples_cover_every_message_type():
    from peer.messages import Message

    assert set(SAMPLES) == set(Message.__args__)


def _host_in(state):
    sent = []
    machine = HostHandshake(HostConfig(RULES, 7, 2), HOST_NONCE, NOW, sent.append)
    steps = [SAMPLES[Hello], SAMPLES[Auth], Pong(NOW), Pong(NOW), Pong(NOW)]
    while machine.state is not state:
        machine.handle(steps.pop(0))
    return machine


def _joiner_in(state):
    machine = JoinerHandshake(JoinerConfig(), JOINER_NONCE, NOW, [].append)
    steps = [SAMPLES[Challenge], SAMPLES[Welcome]]
    while machine.state is not state:
        machine.handle(steps.pop(0))
    return machine


def _playing_in(state, is_host=True):
    established = Established(RULES, 7, 2, 0, "Hana", "Jo", 10, remote_inputs_from=2)
    machine = PlayingConnection(established, is_host, NOW, 5000, 1000, [].append, [])
    if state is PlayState.CLOSING:
        machine.say_goodbye("finished", 10, bytes(8), "")
    elif state is PlayState.ENDED:
        machine.handle(SAMPLES[Goodbye], NOW)
    assert machine.state is state
    return machine


def _joiner_playing_in(state):
    return _playing_in(state, is_host=False)


def _host_watch_in(state):
    machine = HostWatch("Sam", NOW, 5000)
    if state is not WatchState.WAITING:
        machine.start(MatchLog(SAMPLES[MatchInfo]))
    if state is WatchState.ENDED:
        machine.receive_data(encode(SAMPLES[Goodbye]), NOW)
    assert machine.state is state
    return machine


def _spectator_in(state):
    machine = SpectatorConnection(JoinerConfig(), JOINER_NONCE, NOW, 5000, 5000)
    steps = [SAMPLES[Challenge], SAMPLES[MatchInfo], SAMPLES[Goodbye]]
    while machine.state is not state:
        machine.receive_data(encode(steps.pop(0)), NOW)
    return machine


CASES = [
    *((HOST_TRANSITIONS, _host_in, state, kind) for state in HostState for kind in SAMPLES),
    *((JOINER_TRANSITIONS, _joiner_in, state, kind) for state in JoinerState for kind in SAMPLES),
    # (how many watch is the host's word: the joiner's machine takes it)
    *(
        (PLAY_TRANSITIONS, _playing_in if kind is not Watchers else _joiner_playing_in, state, kind)
        for state in PlayState
        for kind in SAMPLES
    ),
    *((HOST_WATCH_TRANSITIONS, _host_watch_in, state, kind) for state in WatchState for kind in SAMPLES),
    *(
        (SPECTATOR_TRANSITIONS, _spectator_in, state, kind)
        for state in SpectatorState
        if state is not SpectatorState.HANDSHAKE  # the joiner's handshake table, walked above
        for kind in SAMPLES
    ),
]


@pytest.mark.parametrize(
    "table, make, state, kind", CASES, ids=[f"{c[2].name}-{c[3].__name__}" for c in CASES]
)
def test_each_row_is_legal_and_each_missing_row_is_a_remote_protocol_error(table, make, state, kind):
    machine = make(state)
    message = SAMPLES[kind]
    handle = (
        machine.handle if not isinstance(machine, PlayingConnection) else lambda m: machine.handle(m, NOW)
    )
    if (state, kind) in table:
        handle(message)  # the row's handler runs; the samples are valid where they are legal
    else:
        with pytest.raises(RemoteProtocolError):
            handle(message)


def test_the_tables_name_only_real_states_and_messages():
    for table, states in (
        (HOST_TRANSITIONS, HostState),
        (JOINER_TRANSITIONS, JoinerState),
        (PLAY_TRANSITIONS, PlayState),
        (HOST_WATCH_TRANSITIONS, WatchState),
        (SPECTATOR_TRANSITIONS, SpectatorState),
    ):
        assert table, "a machine with no legal message"
        for state, kind in table:
            assert state in states and kind in SAMPLES


def test_a_finished_handshake_accepts_nothing_more():
    """Once done, the stream belongs to the playing connection: the tables have no row for DONE."""
    assert not [row for row in HOST_TRANSITIONS if row[0] is HostState.DONE]
    assert not [row for row in JOINER_TRANSITIONS if row[0] is JoinerState.DONE]
    assert not [row for row in PLAY_TRANSITIONS if row[0] is PlayState.ENDED]
    assert not [row for row in HOST_WATCH_TRANSITIONS if row[0] is WatchState.ENDED]
    assert not [row for row in SPECTATOR_TRANSITIONS if row[0] is SpectatorState.ENDED]
