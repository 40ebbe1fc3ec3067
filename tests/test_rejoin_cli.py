"""`--rejoin` / `--resume` refuse a replay that cannot give a seat back: one line, exit 2, before any
connection is made."""

import pytest

from lockstep.game import Game
from lockstep.rules import Rules
from replay.format import RecordedSeat
from replay.writer import ReplayWriter


def _replay(path, *, seat, finish=False, netcode="lockstep"):
    rules = Rules()
    writer = ReplayWriter(path, rules, 3, 2, ("host", "joiner"), 0, seat=seat, netcode=netcode)
    game = Game(rules, 3)
    for _ in range(120):
        writer.add_frame(0, game.advance(0))
    if finish:
        writer.finish("finished")
    else:
        writer.close()  # as a crash leaves it: no footer
    return path


JOINERS = RecordedSeat(1, b"m" * 16, b"s" * 32)
HOSTS = RecordedSeat(0, b"m" * 16, b"s" * 32, host=True)
COMMANDS = {
    "join": (("join", "127.0.0.1:9", "--rejoin"), JOINERS, HOSTS),
    "host": (("host", "--port", "0", "--resume"), HOSTS, JOINERS),
}


@pytest.mark.parametrize(
    "case, needle",
    [
        ("missing", "cannot take a seat back from"),
        ("no seat", "records no seat to take back"),
        ("finished", "is over (finished)"),
        ("rollback", "lockstep matches only"),
        ("the other side's", "replay: take that seat back with pong"),
    ],
)
@pytest.mark.parametrize("command", ["join", "host"])
def test_a_replay_that_cannot_give_a_seat_back_is_one_line_and_exit_2(pong, tmp_path, case, needle, command):
    args, ours, theirs = COMMANDS[command]
    path = tmp_path / "r.replay"
    if case == "no seat":
        _replay(path, seat=None)
    elif case == "finished":
        _replay(path, seat=ours, finish=True)
    elif case == "rollback":
        _replay(path, seat=ours, netcode="rollback")
    elif case == "the other side's":
        _replay(path, seat=theirs)
    result = pong(*args, str(path), "--headless", "--bot", "tracker", "--record", "new.replay", "--json")
    code, out = result.finish(timeout=30)
    assert code == 2, result.stderr
    assert needle in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert out["result"] == "quit" and out["frames"] == 0 and needle in out["detail"]
