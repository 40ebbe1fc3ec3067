"""Cross-interpreter determinism: the same scripts under every CPython >= 3.10 here, same chains.

The simulation is integer-only and hashes a fixed little-endian encoding, so nothing about the
interpreter version should change a chain. This runs a fixed input script and a few seeded random
scripts in a fresh process of every CPython >= 3.10 it finds (on PATH as python3.10 .. python3.14
and python3, and in pyenv's `versions/*/bin/python`), and compares the chains.

The children need nothing installed: they get the project root (the directory holding
`lockstep/`) on PYTHONPATH and import only `lockstep`, which is pure standard library.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lockstep

MIN_VERSION = (3, 10)
PATH_NAMES = [f"python3.{minor}" for minor in range(10, 15)] + ["python3"]
CHECKPOINT_EVERY = 2000


@dataclass(frozen=True)
class Script:
    name: str
    kind: str  # "fixed": a pattern of key presses; "random": lockstep.script.random_inputs(seed, frames)
    seed: int
    frames: int
    points_to_win: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "seed": self.seed,
            "frames": self.frames,
            "points_to_win": self.points_to_win,
        }


SCRIPTS = (
    Script("fixed", "fixed", 20261126, 12_000, 999),
    Script("random-1", "random", 1, 20_000, 999),
    Script("random-2", "random", 2, 20_000, 999),
    Script("random-3", "random", 3, 20_000, 999),
    Script("match-4", "random", 4, 20_000, 11),  # a match to 11 points: it ends, then stays frozen
)

# Runs in the child interpreter: only the standard library and `lockstep`, and 3.10 syntax.
_PROBE = """
import json, os, platform, sys
info = {
    "implementation": sys.implementation.name,
    "version": platform.python_version(),
    "version_info": list(sys.version_info[:3]),
    "executable": os.path.realpath(sys.executable),
}
scripts = json.loads(sys.argv[1])
if scripts and info["implementation"] == "cpython" and tuple(sys.version_info[:2]) >= (3, 10):
    from lockstep.game import Game
    from lockstep.inputs import pack
    from lockstep.rules import Rules
    from lockstep.script import random_inputs
    every = int(sys.argv[2])
    info["chains"] = {}
    info["checkpoints"] = {}
    for s in scripts:
        if s["kind"] == "fixed":
            inputs = [pack((f // 37 + f // 500) % 4, (f // 53 + f // 7) % 4) for f in range(s["frames"])]
        else:
            inputs = random_inputs(s["seed"], s["frames"])
        game = Game(Rules(points_to_win=s["points_to_win"]), s["seed"])
        marks = []
        for f, frame_input in enumerate(inputs, 1):
            chain = game.advance(frame_input)
            if f % every == 0:
                marks.append(chain.hex())
        info["chains"][s["name"]] = game.chain.hex()
        info["checkpoints"][s["name"]] = marks
print(json.dumps(info))
"""


@dataclass
class Interpreter:
    executable: str  # the resolved binary
    version: str
    found_as: list[str] = field(default_factory=list)  # the names or paths it was found under
    chains: dict[str, str] = field(default_factory=dict)  # script name -> final chain (hex)
    checkpoints: dict[str, list[str]] = field(default_factory=dict)
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "executable": self.executable,
            "version": self.version,
            "found_as": self.found_as,
            "chains": self.chains,
            "error": self.error,
        }


@dataclass
class Skipped:
    candidate: str
    reason: str


@dataclass
class Disagreement:
    script: str
    first_frame: int | None  # the first checkpoint frame where the chains differ (None: only the end)
    chains: dict[str, str]  # version (executable) -> final chain

    def as_dict(self) -> dict[str, Any]:
        return {"script": self.script, "first_frame": self.first_frame, "chains": self.chains}


@dataclass
class CrossCheck:
    interpreters: list[Interpreter]
    skipped: list[Skipped]
    scripts: Sequence[Script]
    disagreements: list[Disagreement]

    @property
    def compared(self) -> bool:
        return len(self.usable) >= 2

    @property
    def usable(self) -> list[Interpreter]:
        return [i for i in self.interpreters if i.error is None]

    @property
    def ok(self) -> bool:
        return not self.disagreements and not any(i.error for i in self.interpreters)


def project_root() -> Path:
    """The directory holding the `lockstep` package (a checkout, or site-packages when installed)."""
    return Path(lockstep.__file__).resolve().parent.parent


def pyenv_root() -> Path | None:
    root = os.environ.get("PYENV_ROOT")
    if not root and shutil.which("pyenv"):
        try:
            done = subprocess.run(["pyenv", "root"], capture_output=True, text=True, timeout=10, check=False)
            root = done.stdout.strip() if done.returncode == 0 else None
        except (OSError, subprocess.TimeoutExpired):
            root = None
    if not root:
        root = os.path.expanduser("~/.pyenv")
    return Path(root) if os.path.isdir(root) else None


def candidates() -> list[str]:
    """Every interpreter worth asking, in a stable order, this one first; duplicates are fine."""
    found = [sys.executable]
    for name in PATH_NAMES:
        path = shutil.which(name)
        if path:
            found.append(path)
    root = pyenv_root()
    if root is not None:
        found += sorted(glob.glob(str(root / "versions" / "*" / "bin" / "python")))
    return list(dict.fromkeys(found))


def child_env() -> dict[str, str]:
    """The environment of a child: no PYTHON* settings of ours, the project on PYTHONPATH, no .pyc
    files written into the checkout, and a random hash seed (a chain must not depend on it)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONPATH"] = str(project_root())
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["PYTHONHASHSEED"] = "random"
    return env


def _start(executable: str, scripts: Sequence[Script]) -> subprocess.Popen[str]:
    payload = json.dumps([s.as_dict() for s in scripts])
    return subprocess.Popen(
        [executable, "-s", "-c", _PROBE, payload, str(CHECKPOINT_EVERY)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(),
        cwd=tempfile.gettempdir(),  # not the checkout: `lockstep` must come from PYTHONPATH
    )


def _collect(procs: Iterable[tuple[str, subprocess.Popen[str]]], timeout_s: float) -> list[tuple[str, Any]]:
    """(candidate, parsed JSON) for each child, or (candidate, reason) as a str when it failed."""
    out: list[tuple[str, Any]] = []
    for candidate, proc in procs:
        try:
            stdout, stderr = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            out.append((candidate, f"no answer within {timeout_s:.0f} s"))
            continue
        lines = stdout.strip().splitlines()
        if proc.returncode != 0 or not lines:
            err = [line.strip() for line in stderr.splitlines() if line.strip()]
            # A traceback ends with its point; other complaints (a pyenv shim's) start with it.
            reason = (
                (err[-1] if "Traceback" in stderr else err[0]) if err else f"exit status {proc.returncode}"
            )
            out.append((candidate, reason))
            continue
        try:
            out.append((candidate, json.loads(lines[-1])))
        except ValueError:
            out.append((candidate, f"unexpected output: {lines[-1][:80]}"))
    return out


def find_interpreters(timeout_s: float = 30.0) -> tuple[list[Interpreter], list[Skipped]]:
    """The distinct CPython >= 3.10 interpreters here (by resolved binary), and what was skipped."""
    probes = []
    skipped: list[Skipped] = []
    for candidate in candidates():
        try:
            probes.append((candidate, _start(candidate, [])))
        except OSError as exc:
            skipped.append(Skipped(candidate, exc.strerror or str(exc)))
    interpreters: dict[str, Interpreter] = {}
    for candidate, info in _collect(probes, timeout_s):
        if isinstance(info, str):
            skipped.append(Skipped(candidate, info))
        elif info["implementation"] != "cpython":
            skipped.append(Skipped(candidate, f"{info['implementation']}, not CPython"))
        elif tuple(info["version_info"][:2]) < MIN_VERSION:
            skipped.append(Skipped(candidate, f"Python {info['version']} is older than 3.10"))
        else:
            known = interpreters.setdefault(
                info["executable"], Interpreter(info["executable"], info["version"])
            )
            known.found_as.append(candidate)
    ordered = sorted(interpreters.values(), key=lambda i: (_version_key(i.version), i.executable))
    return ordered, skipped


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) if part.isdigit() else 0 for part in version.split("."))


def cross_check(
    interpreters: list[Interpreter] | None = None,
    scripts: Sequence[Script] = SCRIPTS,
    timeout_s: float = 300.0,
) -> CrossCheck:
    """Run `scripts` in every interpreter (in parallel) and compare the chains."""
    skipped: list[Skipped] = []
    if interpreters is None:
        interpreters, skipped = find_interpreters()
    procs = []
    for interpreter in interpreters:
        try:
            procs.append((interpreter.executable, _start(interpreter.executable, scripts)))
        except OSError as exc:
            interpreter.error = exc.strerror or str(exc)
    by_executable = {i.executable: i for i in interpreters}
    for executable, info in _collect(procs, timeout_s):
        interpreter = by_executable[executable]
        if isinstance(info, str):
            interpreter.error = info
        elif "chains" not in info:
            interpreter.error = "it did not run the scripts"
        else:
            interpreter.chains = info["chains"]
            interpreter.checkpoints = info["checkpoints"]
    return CrossCheck(interpreters, skipped, scripts, _disagreements(interpreters, scripts))


def _disagreements(interpreters: list[Interpreter], scripts: Sequence[Script]) -> list[Disagreement]:
    usable = [i for i in interpreters if i.error is None]
    found = []
    for script in scripts:
        chains = {f"{i.version} ({i.executable})": i.chains.get(script.name, "") for i in usable}
        if len(set(chains.values())) <= 1:
            continue
        first = None
        marks = [i.checkpoints.get(script.name, []) for i in usable]
        for k in range(min(len(m) for m in marks)):
            if len({m[k] for m in marks}) > 1:
                first = (k + 1) * CHECKPOINT_EVERY
                break
        found.append(Disagreement(script.name, first, chains))
    return found
