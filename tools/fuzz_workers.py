"""`pong fuzz --workers N`: one campaign in N processes that share the example database.

Each worker is `python -m tools.fuzz_workers CONFIG` and runs `run_campaign` on its own (its own
examples: worker i's seeded turns draw from (seed, property, turn, i)). What one worker finds
failing goes to the shared database, and every other worker replays it on its next turn of that
property. The parent reads one JSON object per line from each worker's stdout: `{"examples": n}`
now and then, and at the end `{"result": {...}}` or `{"error": "..."}`. It tells a worker to stop
by writing a line to its stdin (which works alike on every platform), or by closing it: a worker
whose parent is gone stops too.
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
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import IO, Any

from tools import stopping
from tools.fuzz_campaign import CampaignResult, Failure, Progress, run_campaign
from tools.fuzz_database import DatabaseUnavailable, open_database
from tools.fuzz_properties import COUNTS, add_observer, by_name, remove_observer

REPORT_EVERY_S = 0.25  # how often a worker sends its count
STOP_GRACE_S = 10.0  # after a stop request, how long a worker may take to send its result
POLL_S = 0.1


def default_workers() -> int:
    """The cores this process may run on."""
    process_cpu_count: Callable[[], int | None] | None = getattr(os, "process_cpu_count", None)
    if process_cpu_count is not None:  # Python 3.13+
        return process_cpu_count() or 1
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


class WorkersFailed(Exception):
    """A worker could not run (its database, a crash); the message is one line for a person."""


@dataclass
class _Worker:
    index: int
    process: subprocess.Popen[str]
    examples: int = 0
    result: CampaignResult | None = None
    error: str | None = None
    stderr: list[str] = field(default_factory=list)
    readers: list[threading.Thread] = field(default_factory=list)

    def tell_stop(self) -> None:
        with contextlib.suppress(OSError, ValueError):  # it has ended already
            assert self.process.stdin is not None
            self.process.stdin.write("stop\n")
            self.process.stdin.flush()


class _StopRequest:
    """Ctrl-C, SIGTERM or SIGHUP while the workers run only set a flag, checked between reads."""

    def __init__(self) -> None:
        self.requested = False

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True


def run_workers(
    names: Sequence[str],
    seconds: float,
    workers: int,
    *,
    database: str,
    keep_going: bool = False,
    seed: int | None = None,
    regression_dir: str = ".",
    progress: Progress | None = None,
    command: Sequence[str] = (sys.executable, "-m", "tools.fuzz_workers"),
) -> CampaignResult:
    """Run the properties `names` for `seconds` in `workers` processes sharing the database
    `database` (a spec for tools/fuzz_database.py); their results summed. Raises WorkersFailed.

    A worker is `command` with the worker's configuration (JSON) as its last argument; tests
    give one that fuzzes properties of their own."""
    config = {
        "names": list(names),
        "seconds": seconds,
        "database": database,
        "keep_going": keep_going,
        "seed": seed,
        "regression_dir": regression_dir,  # the workers run where we do
    }
    lines: queue.Queue[tuple[int, str | None]] = queue.Queue()
    stop = _StopRequest()
    previous = stopping.install(stop)
    start = time.monotonic()
    children: list[_Worker] = []
    stopping_at: float | None = None
    interrupted = gave_up = False
    try:
        for index in range(workers):
            children.append(_start([*command, json.dumps(dict(config, worker=index))], index, lines))
        running = workers
        while running:
            if stop.requested and stopping_at is None:
                interrupted = True
                stopping_at = _stop_all(children)
            if stopping_at is not None and time.monotonic() > stopping_at + STOP_GRACE_S:
                gave_up = True
                break
            try:
                index, line = lines.get(timeout=POLL_S)
            except queue.Empty:
                continue
            child = children[index]
            if line is None:  # its stdout closed: it has ended
                running -= 1
                continue
            _read_line(child, line)
            if (child.error or (child.result and child.result.failures and not keep_going)) and (
                stopping_at is None
            ):
                stopping_at = _stop_all(children)  # a failure ends the campaign, as in one process
            if progress is not None:
                progress.show(time.monotonic(), _status(children, names, start, seconds))
    finally:
        _reap(children, 0.0 if gave_up else STOP_GRACE_S)
        stopping.restore(previous)
        if progress is not None:
            progress.show(time.monotonic(), _status(children, names, start, seconds, done=True), force=True)
            progress.done()
    errors = [f"worker {c.index + 1}: {c.error}" for c in children if c.error]
    if not errors and not interrupted:
        errors = [f"worker {c.index + 1} {_no_result(c)}" for c in children if c.result is None]
    if errors:
        raise WorkersFailed(errors[0])
    return _sum(children, names, time.monotonic() - start, interrupted)


def _start(argv: list[str], index: int, lines: queue.Queue[tuple[int, str | None]]) -> _Worker:
    try:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="backslashreplace",
        )
    except OSError as exc:  # out of processes, or of memory
        raise WorkersFailed(f"cannot start worker {index + 1}: {exc.strerror or exc}") from None
    worker = _Worker(index, process)
    assert process.stdout is not None and process.stderr is not None
    worker.readers = [
        threading.Thread(target=_read, args=(process.stdout, index, lines), daemon=True),
        threading.Thread(target=_collect, args=(process.stderr, worker.stderr), daemon=True),
    ]
    for reader in worker.readers:
        reader.start()
    return worker


def _read(pipe: IO[str], index: int, lines: queue.Queue[tuple[int, str | None]]) -> None:
    with contextlib.suppress(OSError, ValueError):
        for line in pipe:
            lines.put((index, line))
    lines.put((index, None))


def _collect(pipe: IO[str], sink: list[str]) -> None:
    with contextlib.suppress(OSError, ValueError):
        for line in pipe:
            sink.append(line.rstrip("\n"))


def _read_line(worker: _Worker, line: str) -> None:
    try:
        message = json.loads(line)
    except ValueError:
        return  # not ours (a property that printed): nothing to read
    if not isinstance(message, dict):
        return
    if isinstance(message.get("examples"), int):
        worker.examples = message["examples"]
    if isinstance(message.get("result"), dict):
        worker.result = _result_from_dict(message["result"])
        worker.examples = worker.result.examples
    if isinstance(message.get("error"), str):
        worker.error = message["error"]


def _stop_all(children: list[_Worker]) -> float:
    for child in children:
        child.tell_stop()
    return time.monotonic()


def _reap(children: list[_Worker], grace: float) -> None:
    """Every worker ends: those still running after `grace` seconds are killed."""
    for child in children:
        with contextlib.suppress(OSError, ValueError):
            assert child.process.stdin is not None
            child.process.stdin.close()  # a stop for any that was not told yet
    deadline = time.monotonic() + grace
    for child in children:
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.process.wait(timeout=max(0.0, deadline - time.monotonic()))
        if child.process.poll() is None:
            child.process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.process.wait(timeout=STOP_GRACE_S)
        for reader in child.readers:
            reader.join(timeout=5)


def _no_result(worker: _Worker) -> str:
    said = next((line for line in reversed(worker.stderr) if line.strip()), "")
    return f"ended without a result (exit {worker.process.returncode})" + (f": {said}" if said else "")


def _status(
    children: list[_Worker], names: Sequence[str], start: float, seconds: float, done: bool = False
) -> str:
    examples = sum(c.examples for c in children)
    failed = len({f.property for c in children if c.result for f in c.result.failures})
    left = max(start + seconds - time.monotonic(), 0.0)
    count = f"{len(names)} {'property' if len(names) == 1 else 'properties'}"
    return (
        f"fuzz: {examples:,} example{'' if examples == 1 else 's'}, {count}, {len(children)} workers"
        + (f", {failed} FAILED" if failed else "")
        + ("" if done else f", {left:.0f} s left")
    )


def _sum(children: list[_Worker], names: Sequence[str], seconds: float, interrupted: bool) -> CampaignResult:
    results = [c.result for c in children if c.result is not None]
    per_property = {name: sum(r.per_property.get(name, 0) for r in results) for name in names}
    failures: dict[str, Failure] = {}
    for result in results:  # one failure per property: several workers may find the same bug
        for failure in result.failures:
            failures.setdefault(failure.property, failure)
    return CampaignResult(
        seconds=seconds,
        examples=sum(per_property.values()),
        per_property=per_property,
        failures=list(failures.values()),
        interrupted=interrupted or any(r.interrupted for r in results),
        turns=sum(r.turns for r in results),
    )


def _result_to_dict(result: CampaignResult) -> dict[str, Any]:
    return {
        "seconds": result.seconds,
        "examples": result.examples,
        "per_property": result.per_property,
        "failures": [f.as_dict() for f in result.failures],
        "interrupted": result.interrupted,
        "turns": result.turns,
    }


def _result_from_dict(data: dict[str, Any]) -> CampaignResult:
    return CampaignResult(
        seconds=float(data["seconds"]),
        examples=int(data["examples"]),
        per_property={str(k): int(v) for k, v in data["per_property"].items()},
        failures=[Failure(**f) for f in data["failures"]],
        interrupted=bool(data["interrupted"]),
        turns=int(data["turns"]),
    )


# --- the worker process --------------------------------------------------------------------------


def _send(message: dict[str, Any], stopped: threading.Event) -> None:
    """One line to the parent; a parent that is gone stops the campaign (never fails an example)."""
    try:
        sys.stdout.write(json.dumps(message) + "\n")
        sys.stdout.flush()
    except (OSError, ValueError):
        stopped.set()


def _watch_stdin(stopped: threading.Event) -> None:
    with contextlib.suppress(OSError, ValueError):
        sys.stdin.readline()  # a line, or the end of the pipe: either way, stop
    stopped.set()


def worker_main(argv: Sequence[str]) -> int:
    config = json.loads(argv[0])
    properties = by_name(config["names"])
    stopped = threading.Event()
    threading.Thread(target=_watch_stdin, args=(stopped,), daemon=True).start()

    signalled = threading.Event()

    def interrupted(signum: int, frame: object) -> None:
        signalled.set()  # first, so whatever the interrupted example raises is known as the stop's
        stopped.set()
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, interrupted)
    try:
        database = open_database(config["database"])
    except DatabaseUnavailable as exc:
        _send({"error": str(exc)}, stopped)
        return 2
    names = [p.name for p in properties]
    before = sum(COUNTS[n] for n in names)
    next_report = [0.0]

    def report(name: str) -> None:
        now = time.monotonic()
        examples = sum(COUNTS[n] for n in names) - before
        if now >= next_report[0] and examples:  # the first report: once an example has run
            next_report[0] = now + REPORT_EVERY_S
            _send({"examples": examples}, stopped)

    add_observer(report)
    try:
        result = run_campaign(
            properties,
            config["seconds"],
            database=database.database,
            regression_dir=config["regression_dir"],
            keep_going=config["keep_going"],
            seed=config["seed"],
            worker=config["worker"],
            stop=stopped.is_set,
            signalled=signalled.is_set,
        )
    except DatabaseUnavailable as exc:
        _send({"error": str(exc)}, stopped)
        return 2
    finally:
        remove_observer(report)
    _send({"result": _result_to_dict(result)}, stopped)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(worker_main(sys.argv[1:]))
    except KeyboardInterrupt:  # a Ctrl-C before or after the campaign: the parent reports
        sys.exit(130)
