"""The handshake table: each failure ends with the right reason, on the right side."""

import struct

import pytest

from lockstep.rules import SIM_VERSION, Rules, rules_id
from peer.errors import LocalProtocolError, RemoteProtocolError
from peer.messages import PROTOCOL_VERSION, Hello, Refuse, Welcome, encode
from peer.protocol import (
    Connection,
    Ended,
    Established,
    HostConfig,
    JoinerConfig,
    Phase,
    Role,
    Timeouts,
)

RULES = Rules(points_to_win=3)


def host(key=None, now=0, **kw):
    return Connection(Role.HOST, now, b"h" * 16, host=HostConfig(RULES, 42, 2, key, "Hana", **kw))


def joiner(key=None, now=0):
    return Connection(Role.JOINER, now, b"j" * 16, joiner=JoinerConfig(key, "Jo"))


def events_of(conn):
    out = []
    while (event := conn.next_event()) is not None:
        out.append(event)
    return out


def handshake(h, j, steps=20):
    """Move bytes both ways until neither side has anything to say; collect events."""
    got = {"host": [], "joiner": []}
    now = 0
    for _ in range(steps):
        now += 5
        for src, dst, name in ((j, h, "host"), (h, j, "joiner")):
            data = src.data_to_send()
            if data:
                dst.receive_data(data, now)
            got[name] += events_of(dst)
    return got


def only_end(events):
    ends = [e for e in events if isinstance(e, Ended)]
    assert len(ends) == 1, events
    return ends[0]


def test_a_good_handshake_establishes_the_same_match_on_both_sides():
    got = handshake(host(), joiner())
    (h,) = got["host"]
    (j,) = got["joiner"]
    assert isinstance(h, Established) and isinstance(j, Established)
    assert (h.seed, h.delay_frames, h.rules) == (j.seed, j.delay_frames, j.rules) == (42, 2, RULES)
    assert {h.local_slot, j.local_slot} == {0, 1}
    assert (h.remote_name, j.remote_name) == ("Jo", "Hana")


def test_each_side_knows_itself_by_the_name_the_other_side_sees():
    """A long or odd --name is cut for the wire: the local replay must record that same name."""
    long_host, odd_joiner = "H" * 5000, "J\x1b[2Jé" * 10
    h = Connection(Role.HOST, 0, b"h" * 16, host=HostConfig(RULES, 42, 2, None, long_host))
    j = Connection(Role.JOINER, 0, b"j" * 16, joiner=JoinerConfig(None, odd_joiner))
    got = handshake(h, j)
    (he,), (je,) = got["host"], got["joiner"]
    assert he.local_name == je.remote_name == "H" * 32
    assert je.local_name == he.remote_name
    assert "\x1b" not in je.local_name and je.local_name.startswith("J?[2Jé")


def test_a_connection_knows_when_it_last_heard_from_the_peer():
    """The host drops the most silent handshake to make room: silence counts from the start."""
    h, j = host(now=100), joiner()
    assert h.last_heard_ms == 100
    h.receive_data(j.data_to_send(), 250)
    assert h.last_heard_ms == 250


def test_a_matching_key_establishes():
    got = handshake(host(b"secret"), joiner(b"secret"))
    assert all(isinstance(e[0], Established) for e in got.values())


@pytest.mark.parametrize(
    "host_key, joiner_key, host_by_remote, detail",
    [
        (b"right", b"wrong", True, "does not know our key"),  # the joiner catches the host's proof
        (b"right", None, True, "requires a key"),
        (None, b"extra", True, "does not use a key"),
    ],
)
def test_key_failures_end_in_auth_failed_on_both_sides(host_key, joiner_key, host_by_remote, detail):
    got = handshake(host(host_key), joiner(joiner_key))
    h, j = only_end(got["host"]), only_end(got["joiner"])
    assert h.reason == j.reason == "auth_failed"
    assert h.by_remote is host_by_remote and j.by_remote is not host_by_remote
    assert detail in j.detail


def test_a_joiner_that_fakes_its_proof_is_refused_by_the_host():
    h = host(b"right")
    j = joiner(b"right")
    h.receive_data(j.data_to_send(), 1)
    events_of(h)
    j.receive_data(h.data_to_send(), 2)
    events_of(j)
    sent = bytearray(j.data_to_send())
    sent[-4] ^= 1  # flip one bit of the joiner's HMAC (then come the empty seat proof and echo)
    h.receive_data(bytes(sent), 3)
    end = only_end(events_of(h))
    assert end.reason == "auth_failed" and not end.by_remote
    j.receive_data(h.data_to_send(), 4)
    assert only_end(events_of(j)).reason == "auth_failed"


def test_the_key_never_crosses_the_wire():
    key = b"correct horse battery staple"
    h, j = host(key), joiner(key)
    wire = bytearray()
    for _ in range(10):
        for src, dst in ((j, h), (h, j)):
            data = src.data_to_send()
            wire += data
            if data:
                dst.receive_data(data, 1)
            events_of(dst)
    assert key not in wire and key[:8] not in wire


def test_version_mismatch_is_refused_and_both_sides_say_which_versions():
    h = host()
    payload = b"LSPONG\x00\x01" + struct.pack("<H", PROTOCOL_VERSION + 1) + b"future layout"
    h.receive_data(bytes([0x81]) + struct.pack("<H", len(payload)) + payload, 1)
    end = only_end(events_of(h))
    assert end.reason == "version_mismatch" and not end.by_remote
    assert f"host {PROTOCOL_VERSION}, joiner {PROTOCOL_VERSION + 1}" in end.detail
    j = joiner()
    j.data_to_send()
    j.receive_data(h.data_to_send(), 2)
    end = only_end(events_of(j))
    assert end.reason == "version_mismatch" and end.by_remote and "joiner" in end.detail


def test_simulation_version_mismatch_is_a_rules_mismatch():
    h = host()
    other_sim = struct.pack("<I", SIM_VERSION + 1) + Rules().encode()
    h.receive_data(encode(Hello(PROTOCOL_VERSION, other_sim, b"x" * 16, "old")), 1)
    end = only_end(events_of(h))
    assert end.reason == "rules_mismatch"
    assert f"host {SIM_VERSION}, joiner {SIM_VERSION + 1}" in end.detail


def test_the_joiner_refuses_rules_it_cannot_play():
    j = joiner()
    j.data_to_send()
    from peer.messages import Challenge

    j.receive_data(encode(Challenge(b"c" * 16, False, b"")), 1)
    events_of(j)
    bad_rules = rules_id(Rules())[:4] + b"\xff" * len(Rules().encode())
    j.receive_data(encode(Welcome(1, 2, 1, bad_rules, 5, "evil")), 2)
    end = only_end(events_of(j))
    assert end.reason == "rules_mismatch" and not end.by_remote


@pytest.mark.parametrize(
    "junk",
    [b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"\xff\xff\xff\xff", b"\x81\x03\x00abc", b"SSH-2.0-OpenSSH\r\n"],
)
def test_junk_first_bytes_are_a_remote_protocol_error_and_the_host_refuses(junk):
    h = host()
    h.receive_data(junk, 1)
    with pytest.raises(RemoteProtocolError):
        events_of(h)
    assert h.phase is Phase.ENDED
    with pytest.raises(RemoteProtocolError):  # and stays failed
        h.next_event()
    reply = h.data_to_send()
    j = joiner()
    j.data_to_send()
    j.receive_data(reply, 2)
    end = only_end(events_of(j))
    assert end.reason == "protocol_error" and end.by_remote


def test_silence_past_the_deadline_is_a_handshake_timeout_on_the_host():
    h = Connection(Role.HOST, 0, b"h" * 16, host=HostConfig(RULES, 1), timeouts=Timeouts(handshake_ms=5000))
    h.tick(4999)
    assert events_of(h) == []
    h.tick(5001)
    end = only_end(events_of(h))
    assert end.reason == "handshake_timeout" and not end.by_remote
    assert isinstance(_decode_one(h.data_to_send()), Refuse)


def test_a_joiner_whose_host_never_answers_times_out():
    j = joiner()
    j.tick(6000)
    assert only_end(events_of(j)).reason == "handshake_timeout"


def _exchange(h, j, now):
    h.tick(now)
    j.tick(now)
    for src, dst in ((h, j), (j, h), (h, j)):  # ping, pong, and the other side's pong
        data = src.data_to_send()
        if data:
            dst.receive_data(data, now)


@pytest.mark.parametrize("silent", ["host", "joiner"])
def test_silence_is_no_input_and_pings_alone_do_not_keep_a_match_alive(silent):
    h, j = host(), joiner()
    handshake(h, j)
    now = 100
    for _ in range(200):  # 20 s of play: inputs (and pings and pongs) keep it alive
        now += 100
        h.send_input(0, 0)
        j.send_input(0, 0)
        _exchange(h, j, now)
        assert not [e for e in events_of(h) + events_of(j) if isinstance(e, Ended)]
    # Now one side sends nothing but its pings (and pongs): that is no progress.
    talker, waiter = (j, h) if silent == "host" else (h, j)
    start = now
    while now - start <= 5100:
        now += 100
        waiter.send_input(0, 0)
        _exchange(h, j, now)
        if waiter.phase is Phase.ENDED:
            break
    end = only_end([e for e in events_of(waiter) if isinstance(e, Ended)])
    assert end.reason == "peer_timeout" and not end.by_remote
    assert 5000 < now - start <= 5100
    assert talker.bytes_received > 0  # the silent side did keep pinging and ponging


def test_local_misuse_is_a_local_protocol_error():
    with pytest.raises(LocalProtocolError):
        joiner().send_input(1, 0)
    with pytest.raises(LocalProtocolError):
        Connection(Role.HOST, 0, b"short", host=HostConfig(RULES, 1))


def test_a_second_hello_is_a_protocol_error():
    h, j = host(), joiner()
    hello = j.data_to_send()
    h.receive_data(hello + hello, 1)
    with pytest.raises(RemoteProtocolError, match="unexpected hello"):
        events_of(h)


def _decode_one(data):
    from peer.messages import Decoder

    decoder = Decoder()
    decoder.feed(data)
    return decoder.next_message()


def test_a_ping_before_the_hello_is_a_protocol_error_not_an_answer():
    from peer.messages import Ping

    h = host()
    h.receive_data(encode(Ping(1)) * 1000, 1)
    with pytest.raises(RemoteProtocolError, match="not a Lockstep Pong peer"):
        events_of(h)
    assert b"\x88" not in h.data_to_send()  # no pong was queued


def test_a_joiner_that_reached_something_else_says_it_is_not_a_lockstep_pong_peer():
    j = joiner()
    j.receive_data(b"HTTP/1.1 400 Bad Request\r\n\r\n", 1)
    with pytest.raises(
        RemoteProtocolError, match=r"not a Lockstep Pong peer \(first message was not a challenge"
    ):
        events_of(j)


@pytest.mark.parametrize("side", [host, joiner])
def test_a_peer_that_hangs_up_during_the_handshake_is_gone_not_misbehaving(side):
    conn = side()
    conn.receive_data(b"", 1)
    end = only_end(events_of(conn))
    assert (end.reason, end.by_remote) == ("peer_timeout", True)
    assert end.detail == "the peer closed the connection during the handshake"


def test_a_silence_timeout_says_why_in_words_for_the_peer():
    """The peer shows the goodbye's detail as its reason: its own timeout may be another."""
    from peer.messages import Goodbye

    h, j = host(), joiner()
    handshake(h, j)
    h.data_to_send()
    h.tick(60_000)
    (ended,) = events_of(h)
    assert ended.detail == "no input from the peer for 5000 ms"
    goodbye = _decode_one(h.data_to_send())
    assert isinstance(goodbye, Goodbye) and goodbye.reason == "peer_timeout"
    assert goodbye.detail == "the other player received no input from you for 5000 ms"


def test_a_ping_flood_during_play_is_answered_at_most_every_100ms():
    from peer.messages import Ping

    h, j = host(), joiner()
    handshake(h, j)
    h.data_to_send()
    h.receive_data(encode(Ping(7)) * 10_000, 5000)
    assert events_of(h) == []
    replies = h.data_to_send()
    assert 0 < len(replies) <= len(encode(Ping(7)))  # one pong, not ten thousand


def test_the_rtt_during_play_is_smoothed_so_one_late_pong_does_not_stand_as_the_rtt():
    from peer.messages import Pong

    h, j = host(), joiner()
    handshake(h, j)
    now = 1000
    for _ in range(40):
        now += 1000
        h.receive_data(encode(Pong(now - 40)), now)
        assert events_of(h) == []
    assert h.rtt_ms == 40
    now += 1000
    h.send_goodbye("finished", 100, bytes(8))  # a pong in the linger after our goodbye counts alike
    h.receive_data(encode(Pong(now - 840)), now)
    assert events_of(h) == []
    assert h.rtt_ms == 140  # one eighth of the jump, as TCP's SRTT


@pytest.mark.parametrize("reason", ["finished", "desync", "quit"])
def test_a_refusal_with_a_reason_no_host_refuses_with_is_a_protocol_error(reason):
    j = joiner()
    j.data_to_send()
    j.receive_data(encode(Refuse(reason, "you won, go home")), 1)
    with pytest.raises(RemoteProtocolError, match="cannot give the reason"):
        events_of(j)


def test_a_host_that_quits_during_the_handshake_says_so_and_the_joiner_hears_it():
    h, j = host(), joiner()
    h.receive_data(j.data_to_send(), 1)
    assert events_of(h) == []
    h.send_goodbye("quit", 0, bytes(8), "the host left")
    j.receive_data(h.data_to_send(), 2)
    end = only_end(events_of(j))
    assert (end.reason, end.detail, end.by_remote) == ("quit", "the host left", True)


@pytest.mark.parametrize("side", ["host", "joiner"])
def test_no_goodbye_may_claim_a_match_before_it_began(side):
    from peer.messages import Goodbye

    if side == "joiner":
        j = joiner()
        j.data_to_send()
        j.receive_data(encode(Goodbye("finished", 100, bytes(8), "")), 1)
        with pytest.raises(RemoteProtocolError, match="before the match began"):
            events_of(j)
        return
    h, j = host(), joiner()
    h.receive_data(j.data_to_send(), 1)
    assert events_of(h) == []
    h.receive_data(encode(Goodbye("finished", 100, bytes(8), "")), 2)
    with pytest.raises(RemoteProtocolError, match="before the match began"):
        events_of(h)


@pytest.mark.parametrize("reason", ["version_mismatch", "session_full", "auth_failed"])
def test_a_goodbye_with_a_handshake_reason_mid_match_is_a_protocol_error(reason):
    """Only a joiner whose own handshake failed after our welcome may still say so; these it cannot."""
    from peer.messages import Goodbye

    h, j = host(), joiner()
    handshake(h, j)
    h.receive_data(encode(Goodbye(reason, 0, bytes(8), "")), 500)
    with pytest.raises(RemoteProtocolError, match="during the match cannot give the reason"):
        events_of(h)


def test_a_refusal_during_the_match_is_a_protocol_error():
    h, j = host(), joiner()
    handshake(h, j)
    j.receive_data(encode(Refuse("session_full", "too late")), 500)
    with pytest.raises(RemoteProtocolError, match="unexpected refuse"):
        events_of(j)


@pytest.mark.parametrize("purpose", ["WATCH", "RESUME"])
def test_a_connection_says_what_it_is_for_and_a_host_refuses_what_it_does_not_offer(purpose):
    from peer.handshake import Seat
    from peer.messages import Purpose

    h = host()
    seat = Seat(Established(RULES, 42, 2, 1, "Jo", "Hana", 5, b"m" * 16), 7) if purpose == "RESUME" else None
    j = Connection(Role.JOINER, 0, b"j" * 16, joiner=JoinerConfig(None, "Jo", Purpose[purpose], seat))
    got = handshake(h, j)
    end = only_end(got["joiner"])
    assert (end.reason, end.by_remote) == ("unsupported", True)
    assert "does not take" in end.detail


def test_both_sides_name_the_match_alike_and_count_the_peers_inputs_from_the_delay():
    h, j = host(), joiner()
    got = handshake(h, j)
    (he,), (je,) = got["host"], got["joiner"]
    assert he.match_id == je.match_id and len(he.match_id) == 16
    assert he.remote_inputs_from == je.remote_inputs_from == 2  # inputs before the delay are neutral
    for frame_input in (1, 2, 0):
        j.send_input(frame_input, 0xBEEF)
    h.receive_data(j.data_to_send(), 100)
    inputs = events_of(h)
    assert [(e.frame, e.player_input, e.chain_bits) for e in inputs] == [
        (2, 1, 0xBEEF),
        (3, 2, 0xBEEF),
        (4, 0, 0xBEEF),
    ]
    assert h.playing.inputs_held == 5  # what a resume would state: the first frame we lack


def test_the_host_decides_the_netcode_and_the_joiner_follows():
    from peer.messages import Netcode

    h = Connection(Role.HOST, 0, b"h" * 16, host=HostConfig(RULES, 42, 2, netcode=Netcode.ROLLBACK))
    got = handshake(h, joiner())
    assert got["host"][0].netcode is got["joiner"][0].netcode is Netcode.ROLLBACK


def test_a_welcome_for_another_match_is_a_protocol_error():
    h, j = host(), joiner()
    h.receive_data(j.data_to_send(), 1)
    events_of(h)
    j.receive_data(h.data_to_send(), 2)  # the challenge
    events_of(j)
    j.data_to_send()
    forged = Welcome(42, 2, 1, rules_id(RULES), 10, "Hana", b"x" * 16, 2)
    j.receive_data(encode(forged), 3)
    with pytest.raises(RemoteProtocolError, match="another match"):
        events_of(j)


def test_a_version_1_peer_is_refused_naming_both_versions():
    """A hello laid out as protocol 1 had it: magic, version, rules id, nonce, name."""
    rid = rules_id(Rules())
    payload = b"LSPONG\x00\x01" + struct.pack("<H", 1) + bytes([len(rid)]) + rid + b"n" * 16 + b"\x02Jo"
    h = host()
    h.receive_data(bytes([0x81]) + struct.pack("<H", len(payload)) + payload, 1)
    end = only_end(events_of(h))
    assert (end.reason, end.detail) == ("version_mismatch", "protocol versions differ: host 2, joiner 1")
    refusal = _decode_one(h.data_to_send())
    assert isinstance(refusal, Refuse) and refusal.reason == "version_mismatch"


def _played_match(key=None):
    """A match's first handshake: both sides' Established, which a resume must match."""
    got = handshake(host(key), joiner(key))
    return got["host"][0], got["joiner"][0]


def _resume(host_est, joiner_est, *, host_held=9, joiner_held=11, key=None, secret=None, match=None):
    from dataclasses import replace

    from peer.handshake import Seat
    from peer.messages import Purpose

    # Both processes live: each lacks nothing of its own stream (its next input is past what the
    # other holds), so nothing is sent back.
    joiner_seat = Seat(
        replace(joiner_est, secret=secret or joiner_est.secret, match_id=match or joiner_est.match_id),
        joiner_held,
        own_from=host_held,
    )
    h = Connection(
        Role.HOST,
        0,
        b"H" * 16,
        host=HostConfig(
            RULES,
            1,
            None,
            key,
            "Hana",
            purposes=frozenset(Purpose),
            seat=lambda: Seat(host_est, host_held, own_from=joiner_held),
        ),
    )
    j = Connection(Role.JOINER, 0, b"J" * 16, joiner=JoinerConfig(key, "Jo", Purpose.RESUME, joiner_seat))
    return handshake(h, j)


@pytest.mark.parametrize("key", [None, b"k"])
def test_a_player_takes_its_seat_back_and_each_side_learns_which_inputs_the_other_holds(key):
    from peer.messages import Purpose

    host_est, joiner_est = _played_match(key)
    assert host_est.secret == joiner_est.secret and len(host_est.secret) == 32
    got = _resume(host_est, joiner_est, key=key)
    (h,), (j,) = got["host"], got["joiner"]
    assert h.purpose is j.purpose is Purpose.RESUME
    assert (h.seed, h.delay_frames, h.local_slot, h.match_id) == (
        42,
        2,
        host_est.local_slot,
        host_est.match_id,
    )
    assert (j.seed, j.local_slot) == (42, joiner_est.local_slot)
    # Each side continues the other's stream where it stopped, and resends its own from what the
    # other holds.
    assert (h.remote_inputs_from, h.resend_from) == (9, 11)
    assert (j.remote_inputs_from, j.resend_from) == (11, 9)


@pytest.mark.parametrize(
    "change, detail",
    [
        ({"secret": b"s" * 32}, "does not hold this match's secret"),
        ({"match": b"x" * 16}, "no match here has that seat open"),
    ],
)
def test_only_the_player_who_left_gets_the_seat(change, detail):
    host_est, joiner_est = _played_match()
    got = _resume(host_est, joiner_est, **change)
    h_end, j_end = only_end(got["host"]), only_end(got["joiner"])
    assert (h_end.reason, h_end.by_remote) == ("auth_failed", False) and detail in h_end.detail
    assert (j_end.reason, j_end.by_remote) == ("auth_failed", True)


def test_a_secret_is_the_keys_business_too():
    """With a key, the secret is a MAC under it: the same handshake without the key gives another."""
    from peer import auth

    assert auth.seat_secret(b"k", b"h" * 16, b"j" * 16) != auth.seat_secret(None, b"h" * 16, b"j" * 16)


def test_sending_back_more_inputs_than_a_message_holds_is_refused_not_a_crash():
    """A fake host asks a rejoining joiner for every input since frame 0 of a long match."""
    from dataclasses import replace

    from peer.handshake import JoinerHandshake, Seat
    from peer.messages import MAX_ECHO_FRAMES, Challenge, Purpose

    _, joiner_est = _played_match()
    long_ago = MAX_ECHO_FRAMES + 100
    seat = Seat(replace(joiner_est), long_ago, long_ago, lambda first: bytes(long_ago - first))
    sent = []
    machine = JoinerHandshake(JoinerConfig(None, "Jo", Purpose.RESUME, seat), b"J" * 16, 0, sent.append)
    machine.handle(Challenge(b"x" * 16, False, b"", 0))
    assert machine.ended is not None and machine.ended.reason == "auth_failed"


def test_only_a_hello_that_takes_a_seat_back_may_name_inputs():
    h = host()
    h.receive_data(encode(Hello(PROTOCOL_VERSION, rules_id(Rules()), b"n" * 16, "Jo", own_from=5)), 1)
    with pytest.raises(RemoteProtocolError, match="names a match or held inputs"):
        events_of(h)
