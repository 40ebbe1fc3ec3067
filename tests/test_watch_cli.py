"""`pong watch` on the command line: bad input gets one line and its exit code; results and codes."""

from __future__ import annotations

import json

import pytest

from peer.spectate import WatchResult
from tools import exitcodes
from tools.cli import main
from tools.watch import exit_code, summary


def run(capsys, *argv):
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse's usage errors
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_nobody_listening_is_a_network_failure_in_one_line(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, "watch", "127.0.0.1:1", "--headless", "--json")
    assert code == exitcodes.NETWORK
    assert err.strip() == "pong: error: nobody is listening on 127.0.0.1:1"
    result = json.loads(out.strip().splitlines()[-1])
    assert result["result"] == "peer_timeout" and result["replay"] is None
    assert list(tmp_path.iterdir()) == []  # the default replay file it reserved is gone again


@pytest.mark.parametrize(
    "extra, says",
    [
        (("--record", "/nonexistent-dir/s.replay"), "directory /nonexistent-dir does not exist"),
        (("--chat", "/nonexistent-file"), "cannot read the chat file /nonexistent-file"),
        (("--timeout", "1"), "timeout must be between 2 and 3600"),
    ],
)
def test_bad_usage_is_exit_2_before_any_connection(capsys, extra, says):
    code, _, err = run(capsys, "watch", "127.0.0.1:1", "--headless", *extra)
    assert code == exitcodes.USAGE and says in err and "Traceback" not in err


def test_the_exit_code_says_whether_the_match_was_followed():
    followed = WatchResult("quit", "the other player quit", followed=True, names=("a", "b"), score=(1, 2))
    assert exit_code(followed) == exitcodes.OK
    assert summary(followed).startswith("watched a vs b: quit (the other player quit) 1-2")
    assert exit_code(WatchResult("desync", "differs", desync_frame=60)) == exitcodes.CHECK_FAILED
    for reason in ("peer_timeout", "protocol_error", "auth_failed", "spectators_full", "too_slow"):
        assert exit_code(WatchResult(reason, "x")) == exitcodes.NETWORK
    assert exit_code(WatchResult("quit", "you stopped watching")) == exitcodes.OK
    assert exit_code(WatchResult("quit", "cannot record", problem="usage")) == exitcodes.USAGE
