"""The command line of the core tools: synctest, bench, help, bad usage, the shared argument types."""

import argparse
import json
import os
import re
import subprocess
import sys

import pytest

from tests.conftest import ROOT
from tools import args as types
from tools import bench, procmatch
from tools.cli import build_parser, main
from tools.exitcodes import CommandError


def run_pong(*args):
    return subprocess.run([sys.executable, "-m", "tools", *args], cwd=ROOT, capture_output=True, text=True)


def last_json(stdout):
    return json.loads(stdout.strip().splitlines()[-1])


def test_synctest_json_reports_ok(capsys):
    assert main(["synctest", "--frames", "3000", "--check-distance", "5", "--json"]) == 0
    out = last_json(capsys.readouterr().out)
    assert out["ok"] is True and out["frames"] == 3000 and out["first_bad_frame"] is None
    assert len(bytes.fromhex(out["final_chain"])) == 8


def test_synctest_is_reproducible_and_seed_dependent(capsys):
    chains = []
    for seed in ("1", "1", "2"):
        main(["synctest", "--frames", "500", "--seed", seed, "--json"])
        chains.append(last_json(capsys.readouterr().out)["final_chain"])
    assert chains[0] == chains[1] != chains[2]


@pytest.mark.parametrize("distance", ["3", "200"])  # 200 > frames: it used to check nothing and say ok
def test_synctest_exits_1_naming_the_frame_when_restore_is_broken(capsys, monkeypatch, distance):
    """Rolling back starts at frame 1 (to the start while fewer than K frames exist)."""
    from lockstep.game import Game

    original = Game.restore

    def broken(self, snapshot):
        original(self, snapshot)
        self.state.paddle_l += 1

    monkeypatch.setattr(Game, "restore", broken)
    assert main(["synctest", "--frames", "100", "--check-distance", distance, "--json"]) == 1
    captured = capsys.readouterr().out
    assert "first at frame 1" in captured
    assert last_json(captured)["first_bad_frame"] == 1


def test_bench_measures_a_real_figure(capsys):
    """The cheapest real figure, and one that is no timing: the wire bytes of a simulated match."""
    assert main(["bench", "--only", "wire_bytes_per_frame", "--json"]) == 0
    captured = capsys.readouterr().out
    out = last_json(captured)
    assert list(out) == ["wire_bytes_per_frame"] and out["wire_bytes_per_frame"] >= 2  # an input is 2 bytes
    assert "target <= 4" in captured


def failing_figure():
    raise CommandError("the bench match failed: the joiner exited with 3: peer_timeout", 3)


def fake_figures(monkeypatch):
    monkeypatch.setattr(
        bench,
        "FIGURES",
        [
            bench.Figure("fast", lambda: 20.0, 10, True, "x"),
            bench.Figure("stalls", lambda: 0.01, 0.01, False, "", strict=True),
            bench.Figure("broken", failing_figure, 1, False, ""),
        ],
    )


def test_bench_prints_each_figure_against_its_target_strict_or_not(monkeypatch, capsys):
    fake_figures(monkeypatch)
    assert main(["bench", "--only", "fast", "--only", "stalls", "--json"]) == 0
    captured = capsys.readouterr().out
    assert "target >= 10 ok" in captured
    assert "target < 0.01 MISSED" in captured  # exactly at a strict target misses it
    assert last_json(captured) == {"fast": 20.0, "stalls": 0.01}


def test_a_figure_that_cannot_be_measured_is_one_line_and_its_exit_code(monkeypatch, capsys):
    fake_figures(monkeypatch)
    assert main(["bench"]) == 3
    captured = capsys.readouterr()
    assert "fast" in captured.out  # what was measured before stays
    assert captured.err == (
        "pong: error: bench broken could not be measured: the bench match failed: the joiner "
        "exited with 3: peer_timeout\n"
    )


@pytest.mark.parametrize(
    "value, higher, strict, meets",
    [(10, True, False, True), (10, True, True, False), (11, True, True, True),
     (1, False, False, True), (1, False, True, False), (0.99, False, True, True)],
)  # fmt: skip
def test_figure_targets_are_inclusive_unless_strict(value, higher, strict, meets):
    target = 10 if higher else 1
    assert bench.Figure("k", lambda: 0.0, target, higher, "", strict=strict).meets(value) is meets


def test_a_match_interrupted_while_waiting_leaves_no_process_behind(monkeypatch, tmp_path):
    spawned = []
    real_spawn = procmatch._spawn

    def spawn(argv):
        spawned.append(real_spawn(argv))
        return spawned[-1]

    def interrupted(host, joiner, deadline, stop):
        raise KeyboardInterrupt  # Ctrl-C while waiting for the match to end

    monkeypatch.setattr(procmatch, "_spawn", spawn)
    monkeypatch.setattr(procmatch, "_wait_for_either", interrupted)
    bot = ["--headless", "--bot", "tracker"]
    with pytest.raises(KeyboardInterrupt):
        procmatch.run_match(
            [*bot, "--record", str(tmp_path / "h.replay")], [*bot, "--record", str(tmp_path / "j.replay")]
        )
    assert len(spawned) == 2
    assert [p.poll() is None for p in spawned] == [False, False]  # host and joiner both ended


def test_a_chatty_child_is_read_while_it_runs_and_never_blocks_on_a_full_pipe():
    """A host logging a port scan's refusals writes more than a pipe holds while nobody waits on
    it yet: its output must be drained all along, not only once it ended."""
    chatty = "import sys; sys.stderr.write('x' * 300_000); print('done')"
    child = procmatch._Child([sys.executable, "-c", chatty])
    try:
        assert child.process.wait(timeout=30) == 0
        run = child.finish(None, procmatch._StopRequest())
    finally:
        child.stop()
    assert run.lines == ["done"] and len(run.stderr) == 300_000


def test_a_joiner_that_dies_before_its_handshake_does_not_leave_the_match_waiting_forever(tmp_path):
    bot = ["--headless", "--bot", "tracker", "--record", str(tmp_path / "h.replay")]
    run = procmatch.run_match(bot, ["--no-such-flag"], timeout_s=None, grace_s=0.5)
    assert run.joiner.code == 2  # a usage error: it never connected
    assert run.host.code != 0 and run.host.result is None  # the host was stopped after the grace


@pytest.mark.parametrize(
    "args",
    [
        ["synctest", "--frames", "0"],
        ["synctest", "--frames", "lots"],
        ["synctest", "--frames", "10000001"],  # synctest keeps every input in memory
        ["synctest", "--frames", str(2**40)],
        ["synctest", "--seed", "-1"],
        ["synctest", "--check-distance", "0"],
        ["synctest", "--check-distance", "601"],
        ["synctest", "--frames", "10000000", "--check-distance", "600"],  # hours of work: refused
        ["host", "--timeout", "1"],  # below two heartbeats: a healthy waiting peer would be dropped
        ["join", "127.0.0.1:7777", "--timeout", "forever"],
        ["no-such-command"],
        [],
    ],
)
def test_bad_usage_is_one_clear_line_and_exit_2(args):
    result = run_pong(*args)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "error:" in result.stderr


def test_the_silence_timeout_defaults_to_five_seconds():
    parser = build_parser()
    assert parser.parse_args(["host"]).timeout == 5
    assert parser.parse_args(["join", "h:1", "--timeout", "30"]).timeout == 30


def test_version_names_the_versions_that_decide_who_can_play_with_whom():
    from lockstep.rules import SIM_VERSION

    result = run_pong("--version")
    assert result.returncode == 0 and f"SIM_VERSION {SIM_VERSION}" in result.stdout
    assert "protocol " in result.stdout and "replay format " in result.stdout
    # pyproject.toml installs pygame or pygame-ce by Python version; --version says which.
    assert re.search(r"; pygame(-ce)? \d+\.\d+", result.stdout), result.stdout


@pytest.mark.parametrize("text, value", [("auto", None), ("AUTO", None), (" Auto ", None), ("3", 3)])
def test_the_delay_is_auto_in_any_case_or_a_number_of_frames(text, value):
    assert build_parser().parse_args(["host", "--delay", text]).delay == value


def test_help_lists_commands_and_does_not_import_pygame():
    probe = "import sys, tools.cli; tools.cli.build_parser(); print('pygame' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"
    help_text = run_pong("--help").stdout
    for command in ("synctest", "bench"):
        assert command in help_text


@pytest.mark.parametrize(
    "text, joined, forwarded",
    [
        ("127.0.0.1:7000", ("127.0.0.1", 7000), ("127.0.0.1", 7000)),
        ("example.org", ("example.org", 7777), None),  # joining: pong's default port
        ("[::1]:7000", ("::1", 7000), ("::1", 7000)),
        ("[::1]", ("::1", 7777), None),
        ("fe80::1", ("fe80::1", 7777), None),  # a bare IPv6 address: its last group is no port
        ("host:08080", ("host", 8080), ("host", 8080)),  # decimal, leading zero or not
        ("host:0", None, None),  # nobody listens on port 0
        ("host:65536", None, None),
        (":7000", ("127.0.0.1", 7000), None),  # joining this machine
        ("7777", None, None),  # a port, not the address 0.0.30.97
        ("127.1:7000", None, None),  # the resolver's shorthand for 127.0.0.1: nobody means it
        ("0x7f000001", None, None),
        ("010.0.0.1", None, None),  # octal to the resolver, decimal to a person
        ("[::1]7000", None, None),
        ("host:http", None, None),
        ("1.2.3.4:5:6", None, None),  # a typo, not an IPv6 address: usage, not "cannot resolve"
        ("fe80::1%eth0", ("fe80::1%eth0", 7777), None),  # a link-local address with its interface
        ("fe80::1%eth0:7777", None, None),  # a port there needs brackets
        ("[fe80::1%eth0]:7000", ("fe80::1%eth0", 7000), ("fe80::1%eth0", 7000)),
    ],
)
def test_addresses_are_parsed_alike_by_join_and_netsim(text, joined, forwarded):
    for parse, expected in ((types.address, joined), (types.host_port, forwarded)):
        if expected is None:
            with pytest.raises(argparse.ArgumentTypeError):
                parse(text)
        else:
            assert parse(text) == expected


def test_a_bare_number_to_join_is_refused_before_any_connection_with_the_address_meant(monkeypatch):
    import socket

    def no_network(*args, **kwargs):
        raise AssertionError("a bare number must never reach the resolver or a socket")

    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    with pytest.raises(SystemExit) as exit_info:
        main(["join", "7777", "--headless", "--bot", "tracker"])  # main releases its hold on signals
    assert exit_info.value.code == 2
    with pytest.raises(argparse.ArgumentTypeError, match=r"use 127\.0\.0\.1:7777"):
        types.address("7777")


@pytest.mark.parametrize(
    "args, usage, meant",
    [
        (["host", "--poits", "3"], "usage: pong host ", "--points"),
        (["join", "h:1", "--kye=x"], "usage: pong join ", "--key"),
        (["replay", "verify", "x.replay", "--jsno"], "usage: pong replay verify ", "--json"),
        (["hots"], "usage: pong ", "host"),
    ],
)
def test_a_mistyped_option_gets_its_commands_usage_and_a_did_you_mean(args, usage, meant):
    result = run_pong(*args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith(usage)
    assert lines[-1].startswith("pong: error: ") and f"(did you mean {meant}?)" in lines[-1]


@pytest.mark.parametrize(
    "text, value", [("0", 0), ("7777", 7777), ("007", 7), ("0x1E61", 7777), (" 42 ", 42)]
)
def test_whole_numbers_are_decimal_or_prefixed(text, value):
    assert types.port(text) == value
    assert types.seed(text) == value


@pytest.mark.parametrize("text", ["-1", "65536", "7.0", "", "0x", "1e3"])
def test_bad_ports_are_refused(text):
    with pytest.raises(argparse.ArgumentTypeError, match="port must be"):
        types.port(text)


@pytest.mark.parametrize(
    "args",
    [
        ["host", "--json", "--port", "abc"],  # argparse's own error
        ["replay", "verify", "no-such-file.replay", "--json"],  # a command's error
        ["selfplay", "--json", "--delay", "99"],
    ],
)
def test_json_is_promised_even_for_errors(args, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "tools", *args], cwd=tmp_path, capture_output=True, text=True, env=env
    )
    assert result.returncode == 2
    out = last_json(result.stdout)
    assert out["ok"] is False and out["exit_code"] == 2 and out["error"]
    assert "Traceback" not in result.stderr


def test_held_stop_signals_are_ignored_and_restores_wait_for_the_release():
    import signal

    from tools import stopping

    def handler(signum, frame):
        raise AssertionError("not while held")

    before = signal.getsignal(signal.SIGTERM)
    previous = stopping.install(handler, (signal.SIGTERM,))
    try:
        assert signal.getsignal(signal.SIGTERM) is handler
        stopping.hold()
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
        signal.raise_signal(signal.SIGTERM)  # ignored: nothing raised, the process lives on
        stopping.restore(previous)
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN  # put back only on release
    finally:
        stopping.release()
    assert signal.getsignal(signal.SIGTERM) == before


def test_a_signal_ignored_at_start_stays_ignored():
    import signal

    from tools import stopping

    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)  # what nohup does
    try:
        assert stopping.install(lambda signum, frame: None, (signal.SIGHUP,)) == {}
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, previous)


def test_a_ctrl_c_while_the_result_is_printed_changes_nothing(capsys, monkeypatch):
    """Deterministic twin of the end-to-end test: the signal lands inside the report itself."""
    import signal

    from tools import output

    real_say = output.say
    calls = []

    def say_with_ctrl_c(line, file=None):
        calls.append(line)
        if len(calls) == 1:
            signal.raise_signal(signal.SIGINT)  # Ctrl-C as the summary goes out
        real_say(line, file)

    monkeypatch.setattr(output, "say", say_with_ctrl_c)
    assert main(["synctest", "--frames", "100", "--json"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[0].startswith("synctest ok") and last_json("\n".join(out))["ok"] is True
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # released for the caller


def test_a_release_from_another_thread_leaves_the_main_threads_hold_alone():
    import signal
    import threading

    from tools import stopping

    before = signal.getsignal(signal.SIGINT)
    stopping.hold()
    try:
        worker = threading.Thread(target=stopping.release)
        worker.start()
        worker.join()
        assert stopping.held() and signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        stopping.release()
    assert not stopping.held() and signal.getsignal(signal.SIGINT) == before


def test_a_prefix_of_an_option_is_a_typo_not_the_option():
    """argparse would take --headl as --headless; a typo must be told, with the option meant."""
    result = run_pong("host", "--headl", "--bot", "tracker")
    assert result.returncode == 2 and "unknown option --headl (did you mean --headless?)" in result.stderr
