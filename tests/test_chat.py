"""Chat through the in-memory pair: relayed with names, limited in size and rate, made safe, and no
part of the game."""

from __future__ import annotations

from lockstep.bots import make_bot
from lockstep.rules import Rules
from peer.match import MatchPeer
from peer.messages import MAX_CHAT_BYTES, Chat, encode
from peer.pair import Link, make_pair
from peer.playing import CHAT_FROM_JOINER_MS, RemoteChat

RULES = Rules(points_to_win=2)
TICK_MS = 16


def play(host: MatchPeer, joiner: MatchPeer, say=None, max_ticks: int = 20_000) -> None:
    """Both peers at 60 Hz over a 20 ms link; `say(tick, host, joiner)` may chat along the way."""
    to_host, to_joiner = Link(20), Link(20)
    bots = {}
    now = 0
    for tick in range(max_ticks):
        now += TICK_MS
        for peer, link in ((host, to_host), (joiner, to_joiner)):
            data = link.deliver(now)
            if data:
                peer.receive_data(data, now)
        for peer in (host, joiner):
            est = peer.established
            if est is not None and peer not in bots:
                bots[peer] = make_bot("tracker", est.rules, est.local_slot, est.seed)
            bot = bots.get(peer)
            peer.update(now, bot.decide if bot is not None else None)
        if say is not None and host.engine is not None and joiner.engine is not None:
            say(tick, host, joiner)
        to_joiner.send(host.data_to_send(), now)
        to_host.send(joiner.data_to_send(), now)
        if host.finished and joiner.finished:
            return
    raise AssertionError("the match never ended")


def test_lines_cross_with_the_senders_name_and_the_match_is_the_same_without_them():
    quiet_host, quiet_joiner = make_pair(RULES, 11, delay_frames=3)
    play(quiet_host, quiet_joiner)
    host, joiner = make_pair(RULES, 11, delay_frames=3)

    def say(tick, host, joiner):
        if tick == 100:
            joiner.connection.send_chat("", "good luck")
            host.connection.send_chat("host", "you too")
        if tick == 300:
            host.connection.send_chat("Sam", "relayed from a spectator")

    play(host, joiner, say)
    assert host.heard == [RemoteChat("joiner", "good luck")]
    assert joiner.heard == [RemoteChat("host", "you too"), RemoteChat("Sam", "relayed from a spectator")]
    assert host.outcome is not None and host.outcome.result == "finished"
    assert quiet_host.outcome is not None
    assert (host.outcome.frames, host.outcome.final_chain) == (
        quiet_host.outcome.frames,
        quiet_host.outcome.final_chain,
    )


def test_a_joiner_is_heard_at_most_every_500_ms_cut_to_size_without_control_characters():
    host, joiner = make_pair(RULES, 11, delay_frames=3)

    def say(tick, host, joiner):
        if tick == 50:
            joiner.connection.send_chat("", "\x1b[31mred\x07\nline " + "x" * 300)
            joiner.connection.send_chat("", "too soon")  # dropped
        if tick == 50 + CHAT_FROM_JOINER_MS // TICK_MS + 1:
            joiner.connection.send_chat("", "later")

    play(host, joiner, say)
    texts = [line.text for line in host.heard]
    assert len(texts) == 2 and texts[1] == "later"
    assert texts[0].startswith("?[31mred? line xxx") and len(texts[0].encode()) <= MAX_CHAT_BYTES


def test_a_joiner_whose_chat_names_a_sender_is_a_protocol_error():
    host, joiner = make_pair(RULES, 11, delay_frames=3)

    def say(tick, host, joiner):
        if tick == 50:
            joiner.connection._outbox += encode(Chat("host", "I am the host"))

    play(host, joiner, say)
    assert host.outcome is not None and host.outcome.result == "protocol_error"
    assert host.heard == []
