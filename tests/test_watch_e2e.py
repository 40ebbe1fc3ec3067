"""Spectators end to end: real `pong host`, `pong join` and `pong watch` processes on loopback, and
spectators made of the protocol's own machines where a test needs one that misbehaves."""

from __future__ import annotations

import json
import signal
import time

import pytest

from lockstep.game import Game
from lockstep.rules import Rules, rules_id, split_rules_id
from lockstep.script import random_inputs
from peer.handshake import Ended, Established, HostConfig, JoinerConfig
from peer.messages import Input, MatchInfo, Netcode, Ping, Purpose, encode
from peer.protocol import Connection, Role
from peer.transport import Listener, Poller, Stream, connect
from peer.watching import (
    FramesIn,
    HostWatch,
    MatchBegins,
    MatchLog,
    SpectatorConnection,
    SpectatorState,
)
from replay.reader import open_replay, read_replay
from tests.test_e2e import host, join, verified, wait_frames
from tools.netsim import Impairment, NetSim

WATCH = ("--headless", "--json")


def watch(pong, port, *extra, name="spectator.replay"):
    return pong("watch", f"127.0.0.1:{port}", *WATCH, "--record", name, *extra)


def same_match(tmp_path, spectator_replay, host_replay="host.replay"):
    """The spectator's replay verifies and holds the host's match: header, inputs, final chain."""
    theirs, _ = verified(tmp_path / host_replay)
    ours, _ = verified(tmp_path / spectator_replay)
    assert (ours.names, ours.seed, ours.rules, ours.input_delay) == (
        theirs.names,
        theirs.seed,
        theirs.rules,
        theirs.input_delay,
    )
    with open_replay(tmp_path / spectator_replay) as a, open_replay(tmp_path / host_replay) as b:
        assert a.header.netcode == b.header.netcode
    assert ours.frame_inputs == theirs.frame_inputs
    assert ours.recorded_final_chain == theirs.recorded_final_chain


def test_spectators_from_frame_0_mid_match_and_the_last_second_record_the_hosts_match(pong, tmp_path):
    h = host(pong, "--frames", "240", "--seed", "9", "--name", "Hana")
    port = h.port()
    early = watch(pong, port, "--name", "Early", name="early.replay")
    h.wait_line("Early (")  # in before the match: "Early (ADDRESS) came in to watch before the match"
    j = join(pong, port, "--name", "Jo")
    wait_frames(tmp_path / "host.replay", 120, h)
    mid = watch(pong, port, name="mid.replay")
    wait_frames(tmp_path / "host.replay", 180, h)
    late = watch(pong, port, name="late.replay")
    (hc, hr), (jc, _) = h.finish(), j.finish()
    assert hc == jc == 0, (h.stderr, j.stderr)
    results = {}
    for name, proc in (("early", early), ("mid", mid), ("late", late)):
        code, result = proc.finish()
        assert code == 0, (name, proc.stderr, proc.lines)
        assert result is not None and result["result"] == "finished"
        assert result["final_chain"] == hr["final_chain"] and result["frames"] == hr["frames"] == 240
        assert result["score"] == hr["score"]
        same_match(tmp_path, f"{name}.replay")
        results[name] = result
    assert results["early"]["joined_at_frame"] == 0
    assert 120 <= results["mid"]["joined_at_frame"] < 180 <= results["late"]["joined_at_frame"] < 240
    assert hr["spectators"] == 3
    for result in results.values():
        assert result["catch_up_ms"] is not None and result["max_behind_frames"] >= 0
        assert result["bytes_received"] > 240


def test_a_spectator_over_the_limit_is_refused_spectators_full(pong, tmp_path):
    h = host(pong, "--spectators", "1", "--frames", "180")
    port = h.port()
    first = watch(pong, port, name="first.replay")
    h.wait_line("spectator (")
    j = join(pong, port)
    wait_frames(tmp_path / "host.replay", 60, h)
    second = watch(pong, port, name="second.replay")
    code, result = second.finish()
    assert code == 3 and result is not None and result["result"] == "spectators_full", second.lines
    assert not (tmp_path / "second.replay").exists()
    assert h.finish()[0] == 0 and j.finish()[0] == 0
    assert first.finish()[0] == 0


def _spectator(port: int, name: str = "Mallory") -> tuple[Stream, SpectatorConnection]:
    """A spectator made of the protocol's machine, in this process: admitted and left to the test."""
    stream = connect("127.0.0.1", port)
    conn = SpectatorConnection(JoinerConfig(name=name), b"m" * 16, 0, 5000, 5000)
    stream.send(conn.data_to_send())
    deadline = time.monotonic() + 20
    while conn.state is not SpectatorState.FOLLOWING:
        assert time.monotonic() < deadline and conn.open, conn.ended
        data = stream.pump(50)
        if data:
            conn.receive_data(data, 0)
        stream.send(conn.data_to_send())
    return stream, conn


def test_junk_and_floods_from_spectators_cost_the_match_nothing(pong, tmp_path):
    h = host(pong, "--frames", "180", "--seed", "4")
    port = h.port()
    j = join(pong, port)
    wait_frames(tmp_path / "host.replay", 60, h)
    junk, _ = _spectator(port)
    junk.send(encode(Input(1, 0, 0)))  # a spectator has no inputs to give
    junk.flush()
    flood, _ = _spectator(port)
    flood.send(b"".join(encode(Ping(i)) for i in range(20_000)))
    flood.flush()
    polite = watch(pong, port, name="polite.replay")
    (hc, hr), (jc, jr) = h.finish(), j.finish()
    assert hc == jc == 0 and hr["result"] == jr["result"] == "finished"
    assert hr["final_chain"] == jr["final_chain"] and hr["frames"] == 180
    left = [line for line in h.lines if "left (protocol_error" in line]
    assert len(left) == 2, h.lines
    assert polite.finish()[0] == 0
    same_match(tmp_path, "polite.replay")
    for stream in (junk, flood):
        stream.close(linger_ms=0)


def test_a_spectator_that_stops_reading_is_dropped_too_slow(pong, tmp_path):
    h = host(pong, "--frames", "360")  # the drop comes 4 s after it stops reading: about frame 270
    port = h.port()
    j = join(pong, port)
    wait_frames(tmp_path / "host.replay", 30, h)
    stalled, _ = _spectator(port, "Sleepy")  # never reads again, never pings
    line = h.wait_line("spectator Sleepy left", timeout=30)
    assert "too_slow" in line
    assert h.finish()[0] == 0 and j.finish()[0] == 0
    stalled.close(linger_ms=0)


def test_a_spectator_through_a_jittery_link_follows_and_records_the_match(pong, tmp_path):
    h = host(pong, "--frames", "210", "--seed", "12")
    port = h.port()
    j = join(pong, port)
    wait_frames(tmp_path / "host.replay", 90, h)
    with NetSim("127.0.0.1", port, Impairment(delay_ms=40, jitter_ms=30, split=True)) as sim:
        s = watch(pong, sim.port)
        (hc, hr), (sc, sr) = h.finish(), s.finish()
    assert hc == sc == 0 and j.finish()[0] == 0, s.lines
    assert sr["final_chain"] == hr["final_chain"] and sr["joined_at_frame"] >= 90
    same_match(tmp_path, "spectator.replay")


def _fake_host(corrupt_at: int | None) -> tuple[Listener, MatchLog]:
    info = MatchInfo(3, 2, rules_id(Rules()), ("Hana", "Jo"), Netcode.LOCKSTEP, 0)
    log = MatchLog(info)
    game = Game(Rules(), 3)
    for frame, frame_input in enumerate(random_inputs(8, 3000)):
        chain = game.advance(frame_input)
        if frame == corrupt_at:
            chain = bytes(8)
        log.add(frame_input, chain)
    return Listener("127.0.0.1", 0), log


def _serve_one(listener: Listener, log: MatchLog, game_end: tuple[int, bytes]) -> None:
    """A host of only spectators, in this process: admit one, send it the match, say goodbye."""
    deadline = time.monotonic() + 20
    poller = Poller([listener])
    while (stream := listener.accept()) is None:
        assert time.monotonic() < deadline
        poller.wait(50)  # until the spectator dials
    poller.close()
    config = HostConfig(Rules(), 3, 2, purposes=frozenset({Purpose.WATCH}))
    conn = Connection(Role.HOST, 0, b"h" * 16, host=config)
    watcher: HostWatch | None = None
    while watcher is None:
        assert time.monotonic() < deadline
        data = stream.pump(50)
        if data:
            conn.receive_data(data, 0)
        while (event := conn.next_event()) is not None:
            if isinstance(event, Established):
                watcher = HostWatch(event.remote_name, 0, 5000, conn.take_rest())
        stream.send(conn.data_to_send())
    watcher.start(log)
    watcher.finish("finished", *game_end, "match over")
    stream.send(watcher.data_to_send())
    stream.close(linger_ms=2000)


def test_a_spectator_whose_copy_differs_from_the_hosts_reports_a_desync(pong, tmp_path):
    listener, log = _fake_host(corrupt_at=2023)  # the checkpoint closing the second batch
    s = watch(pong, listener.port)
    _serve_one(listener, log, (log.frames, bytes(log.chains[-8:])))
    code, result = s.finish()
    listener.close()
    assert code == 1 and result is not None and result["result"] == "desync", s.lines
    assert result["desync_frame"] == 2024
    report = json.loads((tmp_path / result["report"]).read_text())
    assert report["frame"] == result["desync_frame"] and report["role"] == "spectator"
    assert report["names"] == ["Hana", "Jo"]
    # Its replay holds the frames it checked, and says how it ended.
    replay = read_replay(tmp_path / "spectator.replay")
    assert replay.frames == 1012 and replay.end_reason == "desync"


def test_a_host_whose_final_chain_differs_is_a_desync_at_the_last_frame(pong, tmp_path):
    listener, log = _fake_host(corrupt_at=None)
    s = watch(pong, listener.port)
    _serve_one(listener, log, (log.frames, b"\x01" * 8))
    code, result = s.finish()
    listener.close()
    assert code == 1 and result["result"] == "desync" and result["desync_frame"] == log.frames


def test_players_and_a_spectator_chat_through_the_host(pong, tmp_path):
    for who in ("host", "joiner", "spectator"):
        (tmp_path / f"{who}.txt").write_text(f"hello from {who}\n\n\x1b[2Jclear {who}\n")
    h = host(pong, "--frames", "300", "--chat", "host.txt")
    port = h.port()
    s = watch(pong, port, "--name", "Sam", "--chat", "spectator.txt")
    h.wait_line("Sam (")
    j = join(pong, port, "--chat", "joiner.txt")
    procs = {"host": h, "joiner": j, "spectator": s}
    for proc in procs.values():
        code, _ = proc.finish()
        assert code == 0, (proc.stderr, proc.lines)
    names = {"host": "host", "joiner": "joiner", "spectator": "Sam"}
    for who, proc in procs.items():
        heard = {line for line in proc.lines if line.startswith("chat ")}
        expected = {
            f"chat {names[other]}: {text} {other}"
            for other in procs
            if other != who
            for text in ("hello from", "?[2Jclear")
        }
        assert heard == expected, (who, proc.lines)
    # Every replay keeps every line of the match (its own too), each at the frame it arrived.
    said = {(name, f"{text} {who}") for who, name in names.items() for text in ("hello from", "?[2Jclear")}
    for replay in ("host.replay", "joiner.replay", "spectator.replay"):
        chat = read_replay(tmp_path / replay).chat
        assert {(line.name, line.text) for line in chat} == said, replay
        assert [line.frame for line in chat] == sorted(line.frame for line in chat)


def test_eight_spectators_at_once_follow_the_match_to_its_end(pong, tmp_path):
    """Eight spectators made of the protocol's machine, all in this process, come in mid-match: each
    meets every checkpoint and the host's final chain."""
    h = host(pong, "--frames", "240", "--seed", "21")
    port = h.port()
    j = join(pong, port)
    wait_frames(tmp_path / "host.replay", 60, h)
    watchers = [_spectator(port, f"S{i}") for i in range(8)]
    games: list[Game | None] = [None] * 8
    ended: list[object] = [None] * 8
    deadline = time.monotonic() + 60
    while None in ended:
        assert time.monotonic() < deadline, ended
        for i, (stream, conn) in enumerate(watchers):
            data = stream.pump(5)
            if data:
                conn.receive_data(data, 0)
            elif stream.closed:
                conn.receive_data(b"", 0)
            while (event := conn.next_event()) is not None:
                if isinstance(event, MatchBegins):
                    rules = Rules.decode(split_rules_id(event.info.rules_id)[1])
                    games[i] = Game(rules, event.info.seed)
                elif isinstance(event, FramesIn):
                    game = games[i]
                    assert game is not None and game.run(event.frames.inputs) == event.frames.chain
                elif isinstance(event, Ended):
                    ended[i] = event
            stream.send(conn.data_to_send())
    (hc, hr), (jc, _) = h.finish(), j.finish()
    assert hc == jc == 0 and hr["spectators"] == 8
    for game, end in zip(games, ended, strict=True):
        assert isinstance(end, Ended) and end.reason == "finished" and end.by_remote
        assert game is not None and game.frame == end.frame == 240
        assert game.chain.hex() == end.chain.hex() == hr["final_chain"]
    for stream, _ in watchers:
        stream.close(linger_ms=0)


def test_a_spectator_follows_a_match_whose_players_connection_is_cut_and_taken_back(pong, tmp_path):
    h = host(pong, "--frames", "300", "--seed", "5", "--reconnect", "10")
    port = h.port()
    s = watch(pong, port)
    h.wait_line("spectator (")
    with NetSim("127.0.0.1", port, cut_at_ms=(1500,)) as sim:
        j = join(pong, sim.port, "--reconnect", "10")
        (hc, hr), (jc, jr) = h.finish(timeout=60), j.finish(timeout=60)
        assert sim.cuts_done == 1
    assert hc == jc == 0 and hr["reconnects"] == jr["reconnects"] == 1, (h.lines, j.lines)
    code, result = s.finish()
    assert code == 0 and result["final_chain"] == hr["final_chain"] == jr["final_chain"], s.lines
    same_match(tmp_path, "spectator.replay")


def test_a_host_of_another_simulation_version_is_a_rules_mismatch(pong, tmp_path):
    from dataclasses import replace

    from lockstep.rules import SIM_VERSION

    listener, log = _fake_host(corrupt_at=None)
    other = (SIM_VERSION + 1).to_bytes(4, "little") + log.info.rules_id[4:]
    log.info = replace(log.info, rules_id=other)
    s = watch(pong, listener.port)
    _serve_one(listener, log, (log.frames, bytes(log.chains[-8:])))
    code, result = s.finish()
    listener.close()
    assert code == 3 and result["result"] == "rules_mismatch", s.lines
    assert "simulation versions differ" in result["detail"]


def test_a_host_with_no_room_for_spectators_refuses_them_spectators_full(pong, tmp_path):
    h = host(pong, "--spectators", "0")
    s = watch(pong, h.port())
    code, result = s.finish()
    assert code == 3 and result is not None and result["result"] == "spectators_full", s.lines
    assert "takes no spectators" in result["detail"]
    assert h.process.poll() is None  # still waiting for its player


@pytest.mark.parametrize(
    "key, says",
    [("wrong", "wrong key: the host uses a different --key / PONG_KEY"), (None, "the host uses a key")],
)
def test_a_refused_key_is_said_as_pong_join_says_it(pong, key, says):
    h = pong("host", "--port", "0", "--headless", "--bot", "tracker", "--key", "right")
    port = h.port()
    s = pong("watch", f"127.0.0.1:{port}", *WATCH, *(("--key", key) if key else ()))
    code, result = s.finish()
    assert code == 3 and result["result"] == "auth_failed"
    assert f"pong: error: {says}" in s.stderr and "auth_failed:" not in s.stderr
    h.process.send_signal(signal.SIGINT)
    h.finish()
