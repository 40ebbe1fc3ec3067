"""Real `pong` processes for end-to-end tests: start, read lines as they come, finish with a result.

Start them through `Pongs` (the `pong` fixture of tests/conftest.py), which kills every one still
running when the test ends, whether it passed or an assertion failed half-way.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


class Pong:
    def __init__(self, *args: str, cwd: Path, env: dict[str, str | None] | None = None) -> None:
        """`env` adds to (or, with None values, removes from) a headless environment."""
        full_env = dict(os.environ, SDL_VIDEODRIVER="dummy", SDL_AUDIODRIVER="dummy", PYTHONPATH=str(ROOT))
        full_env.pop("DISPLAY", None)
        for name, value in (env or {}).items():
            if value is None:
                full_env.pop(name, None)
            else:
                full_env[name] = value
        self.args = args
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tools", *args],
            cwd=cwd,
            env=full_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # its own process group: `close` also ends what it started
        )
        self.pid = self.process.pid
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.stderr = ""

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_line(self, prefix: str, timeout: float = 20) -> str:
        """The first stdout line starting with `prefix` (fails on timeout or exit)."""
        while True:
            try:
                line = self._queue.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(
                    f"no line {prefix!r} from pong {' '.join(self.args)} in {timeout} s"
                ) from None
            if line is None:
                self.finish()
                raise AssertionError(f"pong {' '.join(self.args)} ended before {prefix!r}: {self.stderr}")
            self.lines.append(line)
            if line.startswith(prefix):
                return line

    def port(self) -> int:
        return int(self.wait_line("waiting for a player on ").rsplit(":", 1)[1])

    def finish(self, timeout: float = 60) -> tuple[int, dict | None]:
        """Wait for the exit; (exit code, the JSON of the last stdout line or None)."""
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"pong {' '.join(self.args)} did not end within {timeout} s") from None
        self._reader.join(timeout=10)
        while True:
            try:
                line = self._queue.get_nowait()
            except queue.Empty:
                break
            if line is not None:
                self.lines.append(line)
        assert self.process.stderr is not None
        self.stderr = self.stderr or self.process.stderr.read()
        result = None
        if self.lines and self.lines[-1].startswith("{"):
            result = json.loads(self.lines[-1])
        return self.process.returncode, result

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()

    def close(self) -> None:
        """Kill the process and everything it started (such as selfplay's host and joiner) if still
        running, reap it and release its pipes. Safe to call at any time, any number of times."""
        # Even once it is reaped: what it started may live on in its group, and Linux never hands
        # out a pid that is still a group's id, so the group can only be its own.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        self.process.wait()
        self._reader.join(timeout=10)
        for pipe in (self.process.stdout, self.process.stderr):
            if pipe is not None:
                pipe.close()


class Pongs:
    """Starts `pong` processes (in `cwd` unless told otherwise) and closes them all at the end."""

    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd
        self.started: list[Pong] = []

    def __call__(self, *args: str, cwd: Path | None = None, env: dict[str, str | None] | None = None) -> Pong:
        proc = Pong(*args, cwd=cwd or self.cwd, env=env)
        self.started.append(proc)
        return proc

    def close(self) -> None:
        for proc in self.started:
            proc.close()
