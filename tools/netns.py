"""A real network for tests and `pong bench`: two network namespaces joined by a veth pair.

Kernel TCP between two addresses over a link that can lose packets: iptables' `statistic` match
drops a share of what each namespace receives on the veth, and `tc ... tbf` can limit its rate
(this kernel has no netem). Root only. Everything is created inside the two fresh namespaces
(the veth is born in them), so the machine's own interfaces, routes and firewall are never touched,
and it is all removed on the way out.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

HOST_IP, JOINER_IP = "10.213.78.1", "10.213.78.2"
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class NetnsUnavailable(Exception):
    """This machine cannot make the namespaces (not root, no iproute2 or iptables, no support)."""


@dataclass(frozen=True)
class VethPair:
    host_ns: str
    joiner_ns: str
    host_ip: str = HOST_IP
    joiner_ip: str = JOINER_IP


def unavailable_reason(loss: bool = False) -> str | None:
    """Why `veth_pair` cannot run here, or None when it may."""
    if os.geteuid() != 0:
        return "needs root"
    if not shutil.which("ip"):
        return "needs iproute2 (ip)"
    if loss and not shutil.which("iptables"):
        return "needs iptables (the statistic match drops packets)"
    return None


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=20, check=False)


@contextlib.contextmanager
def veth_pair(loss_percent: float = 0.0, rate: str | None = None) -> Iterator[VethPair]:
    """Two namespaces joined by a veth pair; each drops `loss_percent` % of the packets it receives
    on it (both directions lose that share), and sends at most `rate` (a tc rate, "1mbit") when given.
    Raises `NetnsUnavailable` with the reason when any of it cannot be set up."""
    reason = unavailable_reason(loss=loss_percent > 0)
    if reason is not None:
        raise NetnsUnavailable(reason)
    tag = uuid.uuid4().hex[:8]
    pair = VethPair(f"pong-h-{tag}", f"pong-j-{tag}")
    h, j = pair.host_ns, pair.joiner_ns
    hv, jv = f"ph{tag}", f"pj{tag}"
    made: list[str] = []
    try:
        steps: list[tuple[str, ...]] = [
            ("ip", "netns", "add", h),
            ("ip", "netns", "add", j),
            ("ip", "-n", h, "link", "add", hv, "type", "veth", "peer", "name", jv, "netns", j),
            ("ip", "-n", h, "addr", "add", f"{pair.host_ip}/24", "dev", hv),
            ("ip", "-n", j, "addr", "add", f"{pair.joiner_ip}/24", "dev", jv),
        ]
        for ns, dev in ((h, hv), (j, jv)):
            steps += [("ip", "-n", ns, "link", "set", dev, "up"), ("ip", "-n", ns, "link", "set", "lo", "up")]
            if loss_percent > 0:
                probability = f"{loss_percent / 100:.4f}"
                steps.append(
                    ("ip", "netns", "exec", ns, "iptables", "-A", "INPUT", "-i", dev, "-m", "statistic",
                     "--mode", "random", "--probability", probability, "-j", "DROP")
                )  # fmt: skip
            if rate is not None:
                steps.append(
                    ("ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", dev, "root", "tbf", "rate", rate,
                     "burst", "32kbit", "latency", "400ms")
                )  # fmt: skip
        for step in steps:
            done = _run(*step)
            if done.returncode != 0:
                raise NetnsUnavailable(f"{' '.join(step)}: {done.stderr.strip() or 'failed'}")
            if step[:3] == ("ip", "netns", "add"):
                made.append(step[3])
        yield pair
    finally:
        for ns in made:  # deleting a namespace removes its end of the veth, and so the pair
            _run("ip", "netns", "del", ns)


def pong_in(ns: str, *args: str) -> list[str]:
    """The command line of `pong ARGS` inside namespace `ns`."""
    return ["ip", "netns", "exec", ns, sys.executable, "-m", "tools", *args]


def run_match(
    pair: VethPair, host_args: list[str], join_args: list[str], cwd: str, timeout_s: float = 180
) -> tuple[dict[str, Any], dict[str, Any]]:
    """`pong host` in one namespace and `pong join` in the other, both with `--json`; their results.
    Raises `RuntimeError` with what went wrong when either fails."""
    env = dict(os.environ, PYTHONPATH=_ROOT, SDL_VIDEODRIVER="dummy", SDL_AUDIODRIVER="dummy")
    host_cmd = pong_in(pair.host_ns, "host", "--bind", pair.host_ip, "--port", "0", "--json", *host_args)
    host = subprocess.Popen(
        host_cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert host.stdout is not None
        first = host.stdout.readline()
        if not first.startswith("waiting for a player on "):
            said = first.strip() or (host.stderr.read().strip() if host.stderr else "") or "no output"
            raise RuntimeError(f"the host did not start: {said}")
        port = first.rsplit(":", 1)[1].strip()
        joiner = subprocess.run(
            pong_in(pair.joiner_ns, "join", f"{pair.host_ip}:{port}", "--json", *join_args),
            cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout_s, check=False,
        )  # fmt: skip
        out, err = host.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"the match did not end within {timeout_s:g} s") from None
    finally:
        if host.poll() is None:
            host.kill()
            host.wait()
    results = []
    for role, code, stdout, stderr in (
        ("host", host.returncode, out, err),
        ("joiner", joiner.returncode, joiner.stdout, joiner.stderr),
    ):
        lines = stdout.strip().splitlines()
        if code != 0 or not lines or not lines[-1].startswith("{"):
            said = (stderr.strip().splitlines() or ["no output"])[-1]
            raise RuntimeError(f"the {role} exited with {code}: {said}")
        results.append(json.loads(lines[-1]))
    return results[0], results[1]
