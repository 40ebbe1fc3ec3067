"""A real lossy network (root only; skips cleanly otherwise): two network namespaces joined by a
veth pair, each dropping 3 % of the packets it receives (iptables' statistic match), the link's
rate limited by tc's tbf. Kernel TCP retransmits what was lost: lockstep and rollback matches both
finish with equal chains, and their replays verify."""

from __future__ import annotations

import pytest

from replay.reader import read_replay
from replay.verify import verify_replay
from tools.netns import NetnsUnavailable, run_match, veth_pair


@pytest.fixture(scope="module")
def lossy_link():
    try:
        with veth_pair(loss_percent=3, rate="2mbit") as pair:
            yield pair
    except NetnsUnavailable as exc:
        pytest.skip(f"no network namespaces here: {exc}")


@pytest.mark.parametrize("netcode", ["lockstep", "rollback"])
def test_a_match_over_a_lossy_veth_link_finishes_with_equal_chains(lossy_link, tmp_path, netcode):
    common = ["--headless", "--bot", "tracker", "--fast", "--timeout", "20"]
    host, joiner = run_match(
        lossy_link,
        ["--netcode", netcode, "--frames", "1200", "--points", "999", "--record", "h.replay", *common],
        ["--record", "j.replay", *common],
        str(tmp_path),
    )
    assert host["result"] == joiner["result"] == "finished", (host, joiner)
    assert host["netcode"] == joiner["netcode"] == netcode
    assert host["final_chain"] == joiner["final_chain"] and host["frames"] == joiner["frames"] == 1200
    for name in ("h.replay", "j.replay"):
        replay = read_replay(tmp_path / name)
        assert verify_replay(replay).ok and replay.frames == 1200
