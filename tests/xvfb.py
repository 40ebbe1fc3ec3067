"""Two real game windows on a virtual X display, driven by real key presses (xdotool)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from lockstep.inputs import DOWN, unpack
from replay.reader import read_replay
from tests.procs import Pong


def start_xvfb() -> tuple[subprocess.Popen[bytes], str]:
    """An Xvfb server on a free display; `-displayfd` says which one once it is ready."""
    read_end, write_end = os.pipe()
    server = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_end), "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
        pass_fds=(write_end,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write_end)
    with os.fdopen(read_end) as ready:
        number = ready.readline().strip()
    if not number:
        server.kill()
        raise RuntimeError("Xvfb did not start")
    return server, f":{number}"


def xdotool(display: str, *args: str, timeout: float = 20) -> str:
    out = subprocess.run(
        ["xdotool", *args],
        env=dict(os.environ, DISPLAY=display),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return out.stdout.strip()


def screenshot(display: str, path: Path) -> bool:
    if not shutil.which("import"):
        return False
    out = subprocess.run(
        ["import", "-window", "root", str(path)],
        env=dict(os.environ, DISPLAY=display),
        capture_output=True,
        timeout=20,
    )
    return out.returncode == 0


def two_window_match(directory: Path, frames: int, shot: Path | None = None) -> dict[str, Any]:
    server, display = start_xvfb()
    env: dict[str, str | None] = {"DISPLAY": display, "SDL_VIDEODRIVER": None}
    host = joiner = None
    try:
        host = Pong("host", "--port", "0", "--frames", str(frames), "--json", "--name", "Hana",
                    "--record", "host.replay", cwd=directory, env=env)  # fmt: skip
        port = host.port()
        joiner = Pong("join", f"127.0.0.1:{port}", "--json", "--name", "Jo", "--record", "joiner.replay",
                      cwd=directory, env=env)  # fmt: skip
        window = xdotool(display, "search", "--sync", "--onlyvisible", "--pid", str(joiner.pid)).splitlines()[
            0
        ]
        xdotool(display, "windowfocus", "--sync", window)
        xdotool(display, "keydown", "s")
        host.wait_line("vs ")
        if shot is not None:
            screenshot(display, shot)
        host_code, host_result = host.finish(timeout=60)
        xdotool(display, "keyup", "s")
        xdotool(display, "key", "space")  # dismiss the end screen
        joiner_code, joiner_result = joiner.finish(timeout=60)
        replay = read_replay(directory / "joiner.replay")
        slot = joiner_result["slot"] if joiner_result else 1
        moved = any(unpack(i)[slot] == DOWN for i in replay.frame_inputs)
        return {
            "host": host_result,
            "joiner": joiner_result,
            "codes": (host_code, joiner_code),
            "joiner_moved": moved,
        }
    finally:
        for proc in (host, joiner):
            if proc is not None:
                proc.kill()
        server.kill()
        server.wait()
