"""End to end with real `pong` processes on loopback (ephemeral ports): matches, faults, bad input.

Every process is started through the `pong` fixture (tests/conftest.py), which kills whatever is
still running when a test ends, passed or failed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import struct
import subprocess
import sys
import time

import pytest

from lockstep.game import Game
from lockstep.rules import Rules
from lockstep.script import random_inputs
from peer.messages import PROTOCOL_VERSION, Decoder, Refuse
from peer.protocol import Connection, JoinerConfig, Role
from peer.waiting_room import MAX_HANDSHAKES
from replay.format import ReplayError
from replay.reader import read_replay
from replay.verify import verify_replay
from replay.writer import ReplayWriter
from tests.procs import ROOT
from tools.netsim import Impairment, NetSim

BOT = ("--headless", "--bot", "tracker")


def host(pong, *extra, name="host.replay"):
    return pong("host", "--port", "0", *BOT, "--json", "--record", name, *extra)


def join(pong, port, *extra, name="joiner.replay"):
    return pong("join", f"127.0.0.1:{port}", *BOT, "--json", "--record", name, *extra)


def verified(path):
    replay = read_replay(path)
    result = verify_replay(replay)
    assert result.ok, result
    assert replay.footer is not None, "a replay must be finished with its footer"
    return replay, result


def wait_frames(path, frames, proc, timeout=20):
    """Poll (with a deadline) until the replay at `path` holds `frames` frames: the match is under way.

    Replays are flushed every chunk, so this watches the match itself, not the clock.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            with contextlib.suppress(ReplayError):
                if read_replay(path).frames >= frames:
                    return
        assert proc.process.poll() is None, f"the process ended early: {proc.finish()}"
        time.sleep(0.02)
    raise AssertionError(f"{path} never reached {frames} frames")


def test_a_full_match_between_two_processes_ends_with_equal_chains(pong, tmp_path):
    h = host(pong, "--fast", "--points", "2", "--seed", "5")
    j = join(pong, h.port(), "--fast")
    (hc, hr), (jc, jr) = h.finish(), j.finish()
    assert hc == jc == 0, (h.stderr, j.stderr)
    assert hr["result"] == jr["result"] == "finished"
    assert hr["final_chain"] == jr["final_chain"]
    assert hr["frames"] == jr["frames"] > 0
    assert hr["score"] == jr["score"] and max(hr["score"]) == 2
    for key in ("stalls", "bytes_sent", "bytes_received", "rtt_ms", "input_delay", "replay"):
        assert key in hr
    # Every input of every frame from D on crossed the wire (2 bytes each), and no side read more
    # than the other handed to its kernel (the last bytes sent, a pong after the goodbye perhaps,
    # may never be read: the two counts need not be equal).
    for sender, receiver in ((hr, jr), (jr, hr)):
        assert 2 * (hr["frames"] - hr["input_delay"]) <= receiver["bytes_received"] <= sender["bytes_sent"]
    for result, path in ((hr, "host.replay"), (jr, "joiner.replay")):
        replay, check = verified(tmp_path / path)
        assert check.final_chain.hex() == result["final_chain"]
        assert replay.footer.end_reason == "finished"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_stopping_selfplay_stops_both_players_and_they_finish_their_replays(pong, tmp_path, sig):
    """`timeout 60 pong selfplay` sends SIGTERM: its host and joiner must not live on as orphans."""
    out = tmp_path / "out"
    sp = pong("selfplay", "--points", "999", "--realtime", "--out", str(out), "--json")
    wait_frames(out / "joiner.replay", 60, sp)
    sp.process.send_signal(sig)  # to selfplay alone, not to its process group
    code, result = sp.finish(timeout=30)
    assert code == 130 and result == {"ok": False, "error": "interrupted", "exit_code": 130}
    for name in ("host", "joiner"):
        replay = read_replay(out / f"{name}.replay")
        assert replay.footer is not None and replay.footer.end_reason == "quit", name
        assert verify_replay(replay).ok


def test_a_ctrl_c_right_after_the_result_changes_nothing(pong, tmp_path):
    """The match is over and reported: a Ctrl-C during the interpreter's shutdown must not turn
    exit 0 into 130 or print a traceback."""
    h = host(pong, "--fast", "--points", "1")
    j = join(pong, h.port(), "--fast")
    h.wait_line('{"')
    h.process.send_signal(signal.SIGINT)
    (hc, hr), (jc, _) = h.finish(), j.finish()
    assert hc == jc == 0 and hr["result"] == "finished"
    assert "Traceback" not in h.stderr and "KeyboardInterrupt" not in h.stderr


@pytest.mark.parametrize(
    "args, summary",
    [
        (("synctest", "--frames", "2000", "--json"), "synctest ok"),
        (("selfplay", "--points", "1", "--json"), "selfplay ok"),
        (("replay", "verify", "{replay}", "--json"), "replay ok"),
    ],
    ids=["synctest", "selfplay", "replay-verify"],
)
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_signal_once_the_summary_is_out_changes_nothing(pong, tmp_path, args, summary, sig):
    """From the summary on, the command is done: the exit stays 0 and its JSON stays the last line."""
    replay = tmp_path / "m.replay"
    with ReplayWriter(str(replay), Rules(points_to_win=1), 1, 2, ("a", "b"), 0) as writer:
        game = Game(Rules(points_to_win=1), 1)
        for frame_input in random_inputs(1, 600):
            writer.add_frame(frame_input, game.advance(frame_input))
        writer.finish("finished")
    proc = pong(*[arg.format(replay=replay) for arg in args])
    proc.wait_line(summary)
    proc.process.send_signal(sig)
    code, result = proc.finish()
    assert code == 0 and result is not None and result.get("ok", True) is True, proc.stderr
    assert "Traceback" not in proc.stderr and "interrupted" not in proc.stderr


def test_a_host_under_nohup_keeps_ignoring_sighup_and_plays_on(pong, tmp_path):
    """`nohup pong host ...`: closing the terminal must not end the match nohup protects."""
    cmd = [sys.executable, "-m", "tools", "host", "--port", "0", *BOT, "--fast", "--points", "1", "--json"]
    h = subprocess.Popen(
        cmd,
        cwd=tmp_path,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN),  # what nohup does
    )
    try:
        port = int(h.stdout.readline().rsplit(":", 1)[1])  # listening: its handlers are in place
        h.send_signal(signal.SIGHUP)
        jc, jr = join(pong, port, "--fast").finish()
        out, err = h.communicate(timeout=60)
    finally:
        h.kill()
        h.wait()
    assert h.returncode == 0 and jc == 0 and jr["result"] == "finished", err
    assert '"result": "finished"' in out.splitlines()[-1]


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")
def test_a_terminal_that_goes_away_ends_the_host_cleanly(tmp_path):
    """Closing the terminal sends SIGHUP and makes every later write fail with EIO: the host
    stops as if the player quit, without a traceback, exit 0."""
    import pty

    err = tmp_path / "err.txt"
    pid, master = pty.fork()
    if pid == 0:  # the child: the host, on the new terminal, stderr to a file
        try:
            os.chdir(tmp_path)
            os.environ["PYTHONPATH"] = str(ROOT)
            os.dup2(os.open(err, os.O_WRONLY | os.O_CREAT, 0o644), 2)
            os.execv(sys.executable, [sys.executable, "-m", "tools", "host", "--port", "0", *BOT, "--json"])
        finally:
            os._exit(127)  # never back into pytest
    seen = b""
    with contextlib.suppress(OSError):  # EIO once the child is gone
        while b"waiting for a player" not in seen and (chunk := os.read(master, 1024)):
            seen += chunk
    os.close(master)
    deadline = time.monotonic() + 30
    while (ended := os.waitpid(pid, os.WNOHANG))[0] == 0:
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise AssertionError("the host did not end when its terminal went away")
        time.sleep(0.02)  # polling the child's exit, with a deadline
    assert b"waiting for a player" in seen
    assert os.waitstatus_to_exitcode(ended[1]) == 0, err.read_text()
    assert "Traceback" not in err.read_text()


def test_names_and_keys_that_are_not_utf8_still_play_a_match(pong, tmp_path):
    """Bytes typed in a Latin-1 terminal reach Python as surrogates: they must neither crash the
    handshake nor stop the same key from matching on the other side."""
    name, key = os.fsdecode(b"Zo\xeb"), os.fsdecode(b"cl\xe9")
    h = host(pong, "--fast", "--points", "1", "--name", name, "--key", key)
    j = join(pong, h.port(), "--fast", "--name", name, "--key", key)
    (hc, hr), (jc, jr) = h.finish(), j.finish()
    assert hc == jc == 0 and hr["result"] == jr["result"] == "finished", (h.stderr, j.stderr)
    replay, _ = verified(tmp_path / "host.replay")
    assert replay.names == ("Zo?", "Zo?")


def test_a_reader_that_goes_away_costs_neither_the_match_nor_the_replay(pong, tmp_path):
    """`pong host ... | head -1`: after the first line nobody reads stdout; the match goes on."""
    cmd = [sys.executable, "-m", "tools", "host", "--port", "0", *BOT, "--fast", "--points", "1"]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    h = subprocess.Popen(
        [*cmd, "--json", "--record", "host.replay"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        port = int(h.stdout.readline().rsplit(":", 1)[1])
        h.stdout.close()
        jc, jr = join(pong, port, "--fast").finish()
        assert h.wait(timeout=60) == 0 and jc == 0 and jr["result"] == "finished"
        assert "Traceback" not in h.stderr.read()
    finally:
        h.kill()
        h.wait()
        h.stderr.close()
    replay, _ = verified(tmp_path / "host.replay")
    assert replay.footer.end_reason == "finished"


def test_selfplay_runs_a_verified_match(pong, tmp_path):
    sp = pong("selfplay", "--points", "1", "--seed", "3", "--out", str(tmp_path / "out"), "--json")
    code, result = sp.finish(timeout=120)
    assert code == 0, sp.stderr
    assert result["ok"] and result["chains_equal"] and result["replays_verified"]
    assert result["frames"] > 0 and result["problems"] == []
    again = pong("selfplay", "--points", "1", "--seed", "3", "--out", str(tmp_path / "again"), "--json")
    assert again.finish(timeout=120)[1]["final_chain"] == result["final_chain"], "same seed, same match"


@pytest.mark.parametrize("window", [0, 1])
def test_a_peer_killed_mid_match_ends_the_survivor_with_exit_3_and_a_complete_replay(pong, tmp_path, window):
    """At once with --reconnect 0; else once the window for the peer to come back has passed."""
    h = host(pong, "--points", "99", "--reconnect", str(window))
    j = join(pong, h.port())
    wait_frames(tmp_path / "host.replay", 120, h)
    j.process.send_signal(signal.SIGKILL)
    code, result = h.finish(timeout=15)
    assert code == 3, h.stderr
    assert result["result"] == "peer_timeout"
    assert "peer_timeout" in h.stderr or "closed" in h.stderr
    if window:
        assert "not back within 1 s" in result["detail"]
        assert any("connection lost" in line for line in h.lines)
        assert result["reconnects"] == 0 and result["paused_ms"] == 0
    replay, _ = verified(tmp_path / "host.replay")
    assert replay.frames == result["frames"] >= 120
    j.finish()


def test_a_frozen_peer_is_timed_out_by_silence_within_its_timeout(pong, tmp_path):
    """SIGSTOP sends no FIN: only the silence timeout (here --timeout 2) can notice, and it must."""
    h = host(pong, "--points", "99", "--timeout", "2", "--reconnect", "0")
    j = join(pong, h.port())
    wait_frames(tmp_path / "host.replay", 60, h)
    j.process.send_signal(signal.SIGSTOP)
    try:
        code, result = h.finish(timeout=20)
    finally:
        j.process.send_signal(signal.SIGKILL)
        j.finish()
    assert code == 3 and result["result"] == "peer_timeout"
    assert "no input from the peer for 2000 ms" in result["detail"]
    verified(tmp_path / "host.replay")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_ctrl_c_says_goodbye_quit_and_both_keep_their_replays(pong, tmp_path, sig):
    """Ctrl-C, `kill` and a closed terminal all mean the player left."""
    h = host(pong, "--points", "99")
    j = join(pong, h.port())
    wait_frames(tmp_path / "joiner.replay", 60, j)
    j.process.send_signal(sig)
    (jc, jr), (hc, hr) = j.finish(), h.finish()
    assert jc == 0 and jr["result"] == "quit"
    assert hc == 3 and hr["result"] == "quit" and "quit" in h.stderr
    for path in ("host.replay", "joiner.replay"):
        replay, _ = verified(tmp_path / path)
        assert replay.footer.end_reason == "quit"


def refusal(port, payload):
    """Connect, send `payload`, read until the host's first message is complete, close: the
    refusal. (The host may keep a refused socket open a while; waiting for its close would only
    waste time.)"""
    decoder = Decoder()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(payload)
        while (message := decoder.next_message()) is None:
            chunk = sock.recv(4096)
            assert chunk, f"the host closed the connection after {decoder.buffered} bytes, no message"
            decoder.feed(chunk)
    assert isinstance(message, Refuse), message
    return message


@pytest.mark.parametrize("hello", [False, True], ids=["silent", "hello-and-stall"])
def test_junk_http_and_idle_connections_are_refused_and_a_real_player_still_plays(pong, hello):
    h = host(pong, "--fast", "--points", "1")
    port = h.port()
    for junk in (b"\xde\xad\xbe\xef" * 8, b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"):
        assert refusal(port, junk).reason == "protocol_error"
    # Idle connections say nothing, others say hello and stall: however many (more than the host
    # handshakes with at once), they must not keep the real player out. Silent ones make room at
    # once; hello-and-stall ones once they have been silent a second, so the player tries again
    # while it is told session_full, as a person would.
    with contextlib.ExitStack() as idle:
        for _ in range(2 * MAX_HANDSHAKES + 1):
            sock = idle.enter_context(socket.create_connection(("127.0.0.1", port), timeout=10))
            if hello:
                sock.sendall(Connection(Role.JOINER, 0, bytes(16), joiner=JoinerConfig()).data_to_send())
        deadline = time.monotonic() + 20
        for attempt in range(1, 1000):
            jc, jr = join(pong, port, "--fast", name=f"joiner-{attempt}.replay").finish()
            if jr is None or jr["result"] != "session_full" or time.monotonic() > deadline:
                break
        hc, hr = h.finish()
    assert hc == jc == 0 and hr["result"] == "finished"
    assert sum(line.startswith("refused: ") and "protocol_error" in line for line in h.lines) >= 2
    dropped = sum("this one was the most silent" in line for line in h.lines)
    if hello:
        assert dropped >= 1
    else:
        assert attempt == 1 and dropped >= MAX_HANDSHAKES


def test_a_wrong_key_is_refused_and_the_host_keeps_waiting_for_the_right_one(pong):
    h = host(pong, "--fast", "--points", "1", "--key", "sesame")
    port = h.port()
    wrong = join(pong, port, "--fast", "--key", "simsim", name="wrong.replay")
    code, result = wrong.finish()
    assert code == 3 and result["result"] == "auth_failed"
    assert "wrong key: the host uses a different --key / PONG_KEY" in wrong.stderr
    right = join(pong, port, "--fast", "--key", "sesame")
    (hc, hr), (rc, _) = h.finish(), right.finish()
    assert hc == rc == 0 and hr["result"] == "finished"
    # The host logs the joiner's words as the joiner's.
    assert any(
        line.startswith("left the handshake: ")
        and "auth_failed (it says: the host does not know our key)" in line
        for line in h.lines
    )


def test_a_third_connection_during_a_match_gets_session_full_and_the_match_goes_on(pong):
    h = host(pong, "--frames", "120")
    port = h.port()
    j = join(pong, port)
    h.wait_line("vs ")
    third = join(pong, port, name="third.replay")
    code, result = third.finish()
    assert code == 3 and result["result"] == "session_full"
    (hc, hr), (jc, jr) = h.finish(), j.finish()
    assert hc == jc == 0 and hr["frames"] == jr["frames"] == 120
    assert hr["final_chain"] == jr["final_chain"]


def test_a_protocol_version_mismatch_is_refused_naming_both_versions(pong, tmp_path):
    h = host(pong, "--fast", "--points", "1")
    port = h.port()
    payload = b"LSPONG\x00\x01" + struct.pack("<H", PROTOCOL_VERSION + 1) + b"a future hello"
    refused = refusal(port, bytes([0x81]) + struct.pack("<H", len(payload)) + payload)
    assert refused.reason == "version_mismatch"
    assert f"host {PROTOCOL_VERSION}, joiner {PROTOCOL_VERSION + 1}" in refused.detail
    # A real joiner of another version: one line naming both versions, exit 3.
    patched = (
        "import peer.messages as m, peer.handshake as h; m.PROTOCOL_VERSION = h.PROTOCOL_VERSION = 9; "
        f"from tools.cli import main; raise SystemExit(main(['join', '127.0.0.1:{port}', '--headless', "
        "'--bot', 'tracker', '--record', 'old.replay']))"
    )
    old = subprocess.run(
        [sys.executable, "-c", patched],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPATH": str(ROOT), "PATH": ""},
    )
    assert old.returncode == 3
    assert f"host {PROTOCOL_VERSION}, joiner 9" in old.stderr
    assert "Traceback" not in old.stderr
    j = join(pong, port, "--fast")
    assert h.finish()[0] == 0 and j.finish()[0] == 0
    assert sum("version_mismatch" in line for line in h.lines) >= 1


@pytest.mark.parametrize("record", [(), ("--record", "mine.replay"), ("--record", "empty-but-mine.replay")])
@pytest.mark.parametrize(
    "address, needle",
    [("127.0.0.1:{free}", "nobody is listening"), ("no-such-host.invalid:7777", "cannot resolve")],
)
def test_joining_nowhere_is_exit_3_with_one_line(pong, tmp_path, address, needle, record):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    (tmp_path / "empty-but-mine.replay").touch()
    j = pong("join", address.format(free=free), *BOT, *record)
    code, _ = j.finish()
    assert code == 3
    assert needle in j.stderr and "Traceback" not in j.stderr
    assert len(j.stderr.strip().splitlines()) == 1
    # No match, no (empty) replay left behind; a file that was there before stays.
    assert [p.name for p in tmp_path.glob("*.replay")] == ["empty-but-mine.replay"]


def test_a_disk_that_fills_up_mid_match_ends_it_saying_why_and_keeps_what_was_written(pong, tmp_path):
    """RLIMIT_FSIZE makes the joiner's disk "full" after 5000 bytes (room for the check before the
    match, not for the match): it leaves the match (exit 2, the reason in one line, not "you quit"),
    and what it wrote stays readable."""
    limited = (
        "import os, resource, sys; resource.setrlimit(resource.RLIMIT_FSIZE, (5000, 5000)); "
        "os.execv(sys.executable, [sys.executable, '-m', 'tools', *sys.argv[1:]])"
    )
    h = host(pong, "--points", "99", "--fast")
    j = subprocess.run(
        [
            sys.executable,
            "-c",
            limited,
            "join",
            f"127.0.0.1:{h.port()}",
            *BOT,
            "--fast",
            "--record",
            "j.replay",
        ],
        cwd=tmp_path,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert j.returncode == 2, j.stderr
    assert "quit: left the match: cannot write replay j.replay: File too large" in j.stderr
    hc, hr = h.finish()
    assert hc == 3 and hr["result"] == "quit"
    kept = read_replay(tmp_path / "j.replay")
    assert kept.truncated and kept.frames > 0 and verify_replay(kept).ok


@pytest.mark.skipif(not os.path.isdir("/proc/sys"), reason="needs Linux's /proc")
def test_a_replay_path_that_cannot_be_opened_is_refused_before_listening(pong):
    """The directory exists and looks writable, but no file can be made there: say so at once,
    not after a player joined."""
    h = pong("host", "--port", "0", *BOT, "--record", "/proc/x.replay")
    code, _ = h.finish(timeout=20)
    assert code == 2 and "cannot record to /proc/x.replay" in h.stderr
    assert not any(line.startswith("waiting for a player") for line in h.lines)


def test_hosting_on_a_port_in_use_is_one_line_and_exit_3(pong):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        h = pong("host", "--port", str(port), *BOT)
        code, _ = h.finish()
    assert code == 3
    assert "already in use" in h.stderr and "Traceback" not in h.stderr


def test_a_match_through_netsim_at_100ms_rtt_with_jitter_completes_with_equal_chains(pong, tmp_path):
    h = host(pong, "--fast", "--frames", "300")
    port = h.port()
    with NetSim("127.0.0.1", port, Impairment(delay_ms=50, jitter_ms=10, split=True)) as sim:
        j = join(pong, sim.port, "--fast")
        (hc, hr), (jc, jr) = h.finish(), j.finish()
    assert hc == jc == 0, (h.stderr, j.stderr)
    assert hr["final_chain"] == jr["final_chain"] and hr["frames"] == 300
    assert hr["rtt_ms"] >= 80 and hr["input_delay"] >= 6  # 2 x (50 +- 10) ms measured, then auto
    verified(tmp_path / "host.replay")
    verified(tmp_path / "joiner.replay")


def test_a_replay_path_that_is_not_a_regular_file_is_refused_before_playing(pong, tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    h = pong("host", "--port", "0", *BOT, "--record", str(fifo))
    code, _ = h.finish(timeout=20)
    assert code == 2
    assert "not a regular file" in h.stderr and "Traceback" not in h.stderr


def test_three_cuts_in_one_match_pause_it_and_it_ends_as_the_same_match_without_them(pong, tmp_path):
    """netsim resets every connection three times; the joiner redials, takes its seat back, and the
    match ends with the chain of the same match (seed, delay, bots) played without a cut."""
    same = ("--frames", "180", "--seed", "5", "--delay", "2")
    h = host(pong, *same, "--fast", name="clean-host.replay")
    j = join(pong, h.port(), "--fast", name="clean-joiner.replay")
    (hc, clean), (jc, _) = h.finish(), j.finish()
    assert hc == jc == 0, (h.stderr, j.stderr)
    h = host(pong, *same, "--reconnect", "10")
    port = h.port()
    with NetSim("127.0.0.1", port, cut_at_ms=(500, 1100, 1700)) as sim:
        j = join(pong, sim.port, "--reconnect", "10")
        (hc, hr), (jc, jr) = h.finish(timeout=60), j.finish(timeout=60)
        assert sim.cuts_done == 3
    assert hc == jc == 0, (h.stderr, j.stderr)
    assert hr["final_chain"] == jr["final_chain"] == clean["final_chain"]
    assert hr["frames"] == jr["frames"] == 180
    assert hr["reconnects"] == jr["reconnects"] == 3
    assert hr["paused_ms"] > 0 and jr["paused_ms"] > 0
    verified(tmp_path / "host.replay")
    verified(tmp_path / "joiner.replay")
    info = pong("replay", "info", "--json", "host.replay")
    code, described = info.finish()
    assert code == 0 and described["reconnects"] == 3
    assert [r["kind"] for r in described["resumes"]] == ["reconnect"] * 3
    assert any("reconnected after a drop at frame" in line for line in info.lines)


@pytest.mark.parametrize("crashed", ["joiner", "host"])
def test_a_player_killed_mid_match_takes_its_seat_back_from_its_replay(pong, tmp_path, crashed):
    """SIGKILL, then a new process with --rejoin (joiner) or --resume (host, on the same port): the
    match goes on, and the new replay holds the whole match and ends like the match without a crash."""
    same = ("--frames", "210", "--seed", "11", "--delay", "2")
    h = host(pong, *same, "--fast", name="clean-host.replay")
    j = join(pong, h.port(), "--fast", name="clean-joiner.replay")
    (hc, clean), (jc, _) = h.finish(), j.finish()
    assert hc == jc == 0, (h.stderr, j.stderr)

    h = host(pong, *same, "--reconnect", "20")
    port = h.port()
    j = join(pong, port, "--reconnect", "20")
    victim, survivor = (j, h) if crashed == "joiner" else (h, j)
    wait_frames(tmp_path / f"{crashed}.replay", 120, victim)
    victim.process.send_signal(signal.SIGKILL)
    victim.finish()
    if crashed == "joiner":
        # A stranger with a copy of the header but not the secret is refused; the seat stays open.
        assert _stranger_takes_seat(port, tmp_path / "joiner.replay") == "auth_failed"
        new = join(pong, port, "--rejoin", "joiner.replay", name="joiner-2.replay")
    else:
        new = pong(
            "host",
            "--port",
            str(port),
            *BOT,
            "--json",
            "--record",
            "host-2.replay",
            *same,
            "--resume",
            "host.replay",
        )
    (sc, sr), (nc, nr) = survivor.finish(timeout=60), new.finish(timeout=60)
    assert sc == nc == 0, (survivor.stderr, new.stderr)
    assert sr["final_chain"] == nr["final_chain"] == clean["final_chain"]
    assert nr["rejoined_at_frame"] >= 60 and nr["frames"] == 210
    assert sr["reconnects"] == 1 and sr["paused_ms"] > 0
    replay, _ = verified(tmp_path / f"{crashed}-2.replay")
    assert replay.frames == 210  # the whole match, from frame 0
    code, described = pong("replay", "info", "--json", f"{crashed}-2.replay").finish()
    assert code == 0 and [(r["kind"], r["frame"]) for r in described["resumes"]] == [
        ("rejoin", nr["rejoined_at_frame"])
    ]


def test_a_disk_already_full_is_noticed_before_any_connection(pong, tmp_path):
    """With no room for the replay, join says so at once (exit 2): nobody is kept waiting for a
    match that could not be recorded, and no empty file is left behind."""
    limited = (
        "import os, resource, sys; resource.setrlimit(resource.RLIMIT_FSIZE, (1000, 1000)); "
        "os.execv(sys.executable, [sys.executable, '-m', 'tools', *sys.argv[1:]])"
    )
    h = host(pong, "--points", "1")
    j = subprocess.run(
        [sys.executable, "-c", limited, "join", f"127.0.0.1:{h.port()}", *BOT, "--record", "j.replay"],
        cwd=tmp_path,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert j.returncode == 2, j.stderr
    assert "cannot record to j.replay: File too large" in j.stderr and "Traceback" not in j.stderr
    assert not (tmp_path / "j.replay").exists()
    h.process.send_signal(signal.SIGINT)
    h.finish()
    assert not any("vs " in line or "refused" in line for line in h.lines)  # it never connected


def _stranger_takes_seat(port, replay_path):
    """Dial as the crashed joiner would, knowing the match id but not its secret; the end's reason."""
    from dataclasses import replace

    from peer.handshake import Seat
    from peer.messages import Purpose
    from peer.recording import load_seat
    from peer.transport import connect

    established, frames = load_seat(str(replay_path), Role.JOINER)
    forged = Seat(replace(established, secret=b"x" * 32), len(frames), len(frames))
    config = JoinerConfig(None, "stranger", Purpose.RESUME, forged)
    conn = Connection(Role.JOINER, 0, b"s" * 16, joiner=config)
    stream = connect("127.0.0.1", port, 5000)
    stream.send(conn.data_to_send())
    deadline = time.monotonic() + 10
    while conn.ended is None and time.monotonic() < deadline:
        data = stream.pump(50)
        if data or stream.closed:
            conn.receive_data(data, 0)  # b"" once closed: the end of the stream
        while conn.next_event() is not None:
            pass
        stream.send(conn.data_to_send())
    stream.close(linger_ms=0)
    assert conn.ended is not None, "the host never answered the stranger"
    return conn.ended.reason
