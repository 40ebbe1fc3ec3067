"""Optional: a match between two network namespaces joined by a veth pair (a real link, real IPs).

Needs root and iproute2; skips cleanly otherwise. The namespaces, the link and their private
addresses exist only for this test and are removed after it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid

import pytest

from tests.procs import ROOT

HOST_IP, JOINER_IP = "10.213.77.1", "10.213.77.2"


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=20)


@pytest.fixture
def namespaces():
    if os.geteuid() != 0 or not shutil.which("ip"):
        pytest.skip("needs root and iproute2 (ip netns)")
    tag = uuid.uuid4().hex[:6]
    a, b = f"pong-a-{tag}", f"pong-b-{tag}"
    if _ip("netns", "add", a).returncode != 0:
        pytest.skip("network namespaces are not available here")
    try:
        steps = [
            ("netns", "add", b),
            ("link", "add", f"pa{tag}", "type", "veth", "peer", "name", f"pb{tag}"),
            ("link", "set", f"pa{tag}", "netns", a),
            ("link", "set", f"pb{tag}", "netns", b),
            ("-n", a, "addr", "add", f"{HOST_IP}/24", "dev", f"pa{tag}"),
            ("-n", b, "addr", "add", f"{JOINER_IP}/24", "dev", f"pb{tag}"),
            ("-n", a, "link", "set", f"pa{tag}", "up"),
            ("-n", b, "link", "set", f"pb{tag}", "up"),
            ("-n", a, "link", "set", "lo", "up"),
            ("-n", b, "link", "set", "lo", "up"),
        ]
        for step in steps:
            done = _ip(*step)
            if done.returncode != 0:
                pytest.skip(f"cannot set up the veth link: ip {' '.join(step)}: {done.stderr.strip()}")
        yield a, b
    finally:
        _ip("netns", "del", a)
        _ip("netns", "del", b)


def in_netns(ns: str, *args: str) -> list[str]:
    return ["ip", "netns", "exec", ns, sys.executable, "-m", "tools", *args]


def test_a_match_across_two_network_namespaces(namespaces, tmp_path):
    a, b = namespaces
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    common = ["--headless", "--bot", "tracker", "--fast", "--json"]
    host_args = ["--bind", HOST_IP, "--port", "0", "--frames", "1200", "--record", "h.replay", *common]
    host = subprocess.Popen(
        in_netns(a, "host", *host_args),
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert host.stdout is not None
    first = host.stdout.readline()
    assert first.startswith("waiting for a player on "), first
    port = first.rsplit(":", 1)[1].strip()
    joiner = subprocess.run(
        in_netns(b, "join", f"{HOST_IP}:{port}", "--record", "j.replay", *common),
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    out, err = host.communicate(timeout=120)
    assert host.returncode == 0 and joiner.returncode == 0, (err, joiner.stderr)
    host_result = json.loads(out.strip().splitlines()[-1])
    joiner_result = json.loads(joiner.stdout.strip().splitlines()[-1])
    assert host_result["final_chain"] == joiner_result["final_chain"]
    assert host_result["frames"] == 1200
