"""A time-boxed fuzzing campaign: hypothesis properties run in turns outside pytest.

`run_campaign(properties, seconds)` rotates through the properties; each turn calls one
property's `@given` test directly with `max_examples` sized (from the rates of earlier turns) to
take about `turn_seconds`, until the time is up. When the time runs out in the middle of a turn,
the next example stops the run (an exception hypothesis does not treat as a failure), so a
campaign ends on time without ever recording a false failure. Found failures are shrunk in full.

Failing examples go to the persistent example database (`.hypothesis/examples`, or what
`HYPOTHESIS_DATABASE` names: a directory or a Redis, tools/fuzz_database.py), so the next campaign
replays them first, and so does every other campaign sharing that database, on every turn. Every
failure is written out as a ready-to-paste pytest test, `fuzz-regression-<property>.py`.

By default every turn draws fresh random examples. With a `seed`, turn k of property P draws them
from a seed made of (seed, P, k): the same turns run the same examples, which is what a test suite
(or a CI job) wants. How many turns fit in the time still depends on the machine; the time box
itself reads only `clock`, so tests can drive it with a fake one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import pprint
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import hypothesis
from hypothesis import HealthCheck, Verbosity
from hypothesis import settings as Settings
from hypothesis.database import DirectoryBasedExampleDatabase, ExampleDatabase
from hypothesis.reporting import with_reporter

from tools.fuzz_database import DatabaseUnavailable, database_errors, describe, spec_from_environment
from tools.fuzz_properties import (
    COUNTS,
    GivenProperty,
    MachineProperty,
    Property,
    add_observer,
    remove_observer,
)


def default_database_dir() -> Path:
    """Where failing examples persist: `HYPOTHESIS_DATABASE`, else `.hypothesis/examples` here."""
    return Path(spec_from_environment())


class _TimeUp(KeyboardInterrupt):
    """Stops a hypothesis run between examples. Hypothesis re-raises a KeyboardInterrupt without
    saving the example or shrinking it, so this can never pass for a failure."""


class _DatabaseLost(KeyboardInterrupt):
    """The database's storage failed (a Redis that went away): like _TimeUp, hypothesis lets it
    through without taking it for a failure of the property, and the campaign ends."""


class _WatchedDatabase(ExampleDatabase):
    """The example database, noting when hypothesis saves to it: it does so only on a failure
    (and we use no `target()`), so a turn that saved has found a bug and must shrink it in full."""

    def __init__(self, inner: ExampleDatabase) -> None:
        super().__init__()
        self.inner = inner
        self.saved = False
        self.errors = database_errors()

    def save(self, key: bytes, value: bytes) -> None:
        self.saved = True
        with self._storage():
            self.inner.save(key, value)

    def fetch(self, key: bytes) -> Iterable[bytes]:
        with self._storage():
            return list(self.inner.fetch(key))  # read now: a generator would fail later, anywhere

    def delete(self, key: bytes, value: bytes) -> None:
        with self._storage():
            self.inner.delete(key, value)

    def move(self, src: bytes, dest: bytes, value: bytes) -> None:
        with self._storage():
            self.inner.move(src, dest, value)

    @contextlib.contextmanager
    def _storage(self) -> Iterator[None]:
        try:
            yield
        except self.errors as error:
            raise _DatabaseLost(describe(error)) from error


@dataclass
class Failure:
    property: str
    error: str  # "AssertionError: the peers computed different chains"
    where: str  # file:line of the innermost frame in the property
    example: str  # the minimal failing example, as code
    regression_file: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "property": self.property,
            "error": self.error,
            "where": self.where,
            "example": self.example,
            "regression_file": self.regression_file,
        }


@dataclass
class CampaignResult:
    seconds: float
    examples: int
    per_property: dict[str, int]
    failures: list[Failure] = field(default_factory=list)
    interrupted: bool = False
    turns: int = 0

    @property
    def ok(self) -> bool:
        return not self.failures and not self.interrupted


class Progress:
    """One status line: rewritten in place on a terminal, else printed every `every_s` seconds."""

    def __init__(self, stream: TextIO, every_s: float = 5.0, tty: bool | None = None) -> None:
        self.stream = stream
        self.tty = stream.isatty() if tty is None else tty
        self.every_s = 0.1 if self.tty else every_s
        self._next = 0.0
        self._width = 0

    def show(self, now: float, text: str, force: bool = False) -> None:
        if not force and now < self._next:
            return
        self._next = now + self.every_s
        if self.tty:
            self.stream.write("\r" + text.ljust(self._width))
            self._width = len(text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def done(self) -> None:
        """End the line rewritten in place, leaving the last status on the screen."""
        if self.tty and self._width:
            self.stream.write("\n")
            self.stream.flush()


def run_campaign(
    properties: Sequence[Property],
    seconds: float,
    *,
    database_dir: str | os.PathLike[str] | None = None,
    database: ExampleDatabase | None = None,
    regression_dir: str | os.PathLike[str] = ".",
    keep_going: bool = False,
    progress: Progress | None = None,
    turn_seconds: float | None = None,
    clock: Callable[[], float] = time.monotonic,
    seed: int | None = None,
    worker: int = 0,
    stop: Callable[[], bool] | None = None,
    signalled: Callable[[], bool] | None = None,
) -> CampaignResult:
    """Fuzz `properties` in turns for `seconds` (by `clock`); stop at the first failure unless
    `keep_going`. With a `seed`, each turn's examples are determined by the seed, the property,
    the turn's number and the `worker` (one of several campaigns sharing the database, each with
    examples of its own; see the module's docstring).

    The examples are kept in `database`, else in the directory `database_dir` (default: see
    `default_database_dir`). When `stop()` turns true the campaign ends as if its time were up;
    when `signalled()` is true a failure is the interrupting signal's doing, and the campaign ends
    interrupted. A database whose storage fails raises DatabaseUnavailable."""
    if not properties:
        raise ValueError("no properties to run")
    watched = _WatchedDatabase(
        database or DirectoryBasedExampleDatabase(os.fspath(database_dir or default_database_dir()))
    )
    if turn_seconds is None:
        # Short campaigns visit every property a few times; long ones spend less on switching.
        turn_seconds = min(max(seconds / (4 * len(properties)), 0.25), 10.0)
    start = clock()
    deadline = start + seconds
    counts_before = {p.name: COUNTS[p.name] for p in properties}
    active = list(properties)
    rates: dict[str, float] = {}
    turns_of: dict[str, int] = {p.name: 0 for p in properties}
    result = CampaignResult(0.0, 0, {p.name: 0 for p in properties})
    current = [""]

    def examples() -> int:
        return sum(COUNTS[p.name] - counts_before[p.name] for p in properties)

    def status(now: float) -> str:
        left = max(deadline - now, 0.0)
        failed = f", {len(result.failures)} FAILED" if result.failures else ""
        return (
            f"fuzz: {_examples(examples())}, {len(properties)} "
            f"{'property' if len(properties) == 1 else 'properties'}{failed}, "
            f"{'' if current[0] == 'done' else 'now '}{current[0]}, {left:.0f} s left"
        )

    def over(now: float) -> bool:
        return now >= deadline or (stop is not None and stop())

    def observe(name: str) -> None:
        now = clock()
        # Once a turn has found a failure, let hypothesis shrink it even past the deadline.
        if over(now) and not watched.saved:
            raise _TimeUp
        if progress is not None:
            progress.show(now, status(now))

    add_observer(observe)
    try:
        while active and not over(clock()):
            for prop in list(active):
                now = clock()
                if over(now):
                    break
                turn = min(turn_seconds, deadline - now)
                rate = rates.get(prop.name)
                max_examples = 2 if rate is None else max(1, min(int(rate * turn), 1_000_000))
                current[0] = prop.name
                watched.saved = False
                before = COUNTS[prop.name]
                began = clock()
                turn_seed = None if seed is None else _turn_seed(seed, prop.name, turns_of[prop.name], worker)
                failure = _run_turn(prop, max_examples, watched, regression_dir, turn_seed)
                took = max(clock() - began, 1e-6)
                result.turns += 1
                turns_of[prop.name] += 1
                # Examples per second of this turn, hypothesis' own overhead included.
                rates[prop.name] = max(COUNTS[prop.name] - before, 1) / took
                if failure is not None and signalled is not None and signalled():
                    # Stopped mid-example (a Ctrl-C to the whole process group reaches the test
                    # itself): what it raised is the stop's doing, not a property's failure.
                    result.interrupted = True
                    break
                if failure is not None:
                    result.failures.append(failure)
                    active.remove(prop)
                    if not keep_going:
                        active.clear()
                        break
    except _DatabaseLost as lost:
        raise DatabaseUnavailable(f"the example database failed: {lost}") from None
    except KeyboardInterrupt:  # a real Ctrl-C (time-ups never leave _run_turn)
        result.interrupted = True
    finally:
        remove_observer(observe)
        if progress is not None:
            current[0] = "done"
            progress.show(clock(), status(clock()), force=True)
            progress.done()
    result.seconds = clock() - start
    result.per_property = {p.name: COUNTS[p.name] - counts_before[p.name] for p in properties}
    result.examples = sum(result.per_property.values())
    return result


def _turn_seed(seed: int, name: str, turn: int, worker: int = 0) -> int:
    # Worker 0 draws what a campaign alone draws; the others each a sequence of their own.
    text = f"{seed}/{name}/{turn}" + (f"/{worker}" if worker else "")
    digest = hashlib.blake2b(text.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


# Where hypothesis looks for a test's fixed seed (what `@hypothesis.seed(n)` sets). The decorator
# itself would also switch the example database off, and the campaign needs the database: its
# saves are how a turn knows it found a failure, and failures must be replayed next time.
_SEED_ATTRIBUTE = "_hypothesis_internal_use_seed"


@contextlib.contextmanager
def _seeded(prop: Property, test: Callable[[], None], seed: int | None) -> Iterator[None]:
    """Run `prop`'s `test` with hypothesis' random generator seeded (nothing changes when None)."""
    if seed is None:
        yield
        return
    # A state machine takes the seed from its class; a @given test from the test itself.
    target: Any = prop.machine if isinstance(prop, MachineProperty) else test
    missing = object()
    previous = vars(target).get(_SEED_ATTRIBUTE, missing)
    setattr(target, _SEED_ATTRIBUTE, seed)
    try:
        yield
    finally:
        if previous is missing:
            delattr(target, _SEED_ATTRIBUTE)
        else:
            setattr(target, _SEED_ATTRIBUTE, previous)


def _run_turn(
    prop: Property,
    max_examples: int,
    database: ExampleDatabase,
    regression_dir: str | os.PathLike[str],
    seed: int | None = None,
) -> Failure | None:
    turn_settings = Settings(
        max_examples=max_examples,
        deadline=None,
        database=database,
        derandomize=False,  # the suite's `ci` profile derandomizes; a campaign must not
        report_multiple_bugs=False,
        suppress_health_check=list(HealthCheck),
        verbosity=Verbosity.normal,  # `quiet` would also drop the failing example from the notes
        stateful_step_count=60,
        print_blob=False,
    )
    prop.reset()
    reports: list[object] = []
    test = prop.test(turn_settings)
    try:
        # with_reporter keeps hypothesis' own printing off our stdout.
        with with_reporter(reports.append), _seeded(prop, test, seed):
            test()
    except _TimeUp:
        return None
    except Exception as error:
        return _describe_failure(prop, error, regression_dir)
    return None


def _notes(error: BaseException) -> list[str]:
    notes = getattr(error, "__notes__", None) or []
    return [str(n) for n in notes]


_HYPOTHESIS_DIR = os.path.dirname(hypothesis.__file__)


def _where(error: BaseException) -> str:
    frames = traceback.extract_tb(error.__traceback__)
    own = [f for f in frames if not f.filename.startswith(_HYPOTHESIS_DIR)]
    if not (own or frames):
        return "?"
    frame = (own or frames)[-1]
    return f"{frame.filename}:{frame.lineno} in {frame.name}"


def _error_text(error: BaseException) -> str:
    message = str(error).strip().splitlines()
    return f"{type(error).__name__}: {message[0]}" if message else type(error).__name__


def _machine_steps(error: BaseException) -> list[str]:
    """The failing program hypothesis prints for a state machine: `state = M()`, `state.rule(...)`."""
    steps: list[str] = []
    collecting = False
    for note in _notes(error):
        if note.startswith(("Failing test case", "Falsifying example")):
            collecting = True
            continue
        if collecting:
            if not note.strip() or note.startswith(("Explanation", "You can reproduce")):
                break
            steps.extend(note.splitlines())
    return steps


def _call(function: Callable[..., Any], arguments: dict[str, Any]) -> list[str]:
    """`function(\n    name=value,\n)` as lines of code, values written as Python."""
    lines = [f"{function.__name__}("]
    for name, value in arguments.items():
        lines.extend(f"    {name}={_code(value, 4, len(name) + 5)},".splitlines())
    lines.append(")")
    return lines


def _code(value: Any, indent: int, column: int) -> str:
    """`value` as Python source starting at `column` of a line indented by `indent`; later lines
    carry their whole indentation.

    A dataclass (such as `Rules`) shows only the fields that differ from their defaults, so
    `Rules(points_to_win=999)` reads as that; everything else is `pprint`ed.
    """
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        parts = []
        for f in dataclasses.fields(value):
            current = getattr(value, f.name)
            if f.init and (f.default is dataclasses.MISSING or current != f.default):
                parts.append(f"{f.name}={current!r}")
        text = f"{type(value).__name__}({', '.join(parts)})"
        if column + len(text) <= 100:
            return text
        inner = " " * (indent + 4)
        return f"{type(value).__name__}(\n" + "".join(f"{inner}{p},\n" for p in parts) + " " * indent + ")"
    text = pprint.pformat(value, width=max(100 - column, 40), compact=True, sort_dicts=False)
    return text.replace("\n", "\n" + " " * column)


def _import_of(obj: Any) -> str:
    module, qualname = getattr(obj, "__module__", "?"), getattr(obj, "__qualname__", "?")
    if module == "__main__" or "<locals>" in qualname or "." in qualname:
        return f"# import or define {qualname} (from {module}) here"
    return f"from {module} import {qualname}"


def _describe_failure(
    prop: Property, error: BaseException, regression_dir: str | os.PathLike[str]
) -> Failure:
    error_text = _error_text(error)
    where = _where(error)
    body: list[str]
    if isinstance(prop, GivenProperty) and prop.failing_arguments is not None:
        call = _call(prop.body, prop.failing_arguments)
        example = "\n".join(call)
        imports = [*prop.imports, _import_of(prop.body)]
        body = call
    elif isinstance(prop, MachineProperty) and _machine_steps(error):
        body = _machine_steps(error)
        example = "\n".join(body)
        imports = [*prop.imports, _import_of(prop.machine)]
    else:
        example = "\n".join(_notes(error)) or "(hypothesis gave no example; see the error)"
        imports = list(prop.imports)
        body = ["# pong fuzz could not extract the failing example; hypothesis said:"]
        body += [f"# {line}" for line in example.splitlines()]
        body.append("raise AssertionError(" + repr(error_text) + ")")
    source = _regression_source(prop, error_text, where, imports, body)
    path = os.path.join(os.fspath(regression_dir), f"fuzz-regression-{prop.name}.py")
    written: str | None = path
    try:
        with open(path, "w", encoding="utf-8") as file:
            file.write(source)
    except OSError as exc:
        print(f"pong fuzz: cannot write the regression test {path}: {exc.strerror or exc}", file=sys.stderr)
        written = None
    return Failure(prop.name, error_text, where, example, written)


def _regression_source(
    prop: Property, error_text: str, where: str, imports: list[str], body: list[str]
) -> str:
    when = time.strftime("%Y-%m-%d %H:%M:%S")
    lines = [
        f'"""Regression test written by `pong fuzz` on {when}: property `{prop.name}` failed.',
        "",
        f"Property: {prop.summary}.",
        f"Failed with {error_text}",
        f"at {where}.",
        "",
        "This is the minimal failing example hypothesis found. Paste the test into tests/ (for example",
        "tests/test_regressions.py); it fails until the bug is fixed, and keeps it fixed after.",
        '"""',
        "",
        *dict.fromkeys(imports),  # in order, without repeats
        "",
        "",
        f"def test_fuzz_regression_{prop.name}():",
        *("    " + line if line else "" for line in "\n".join(body).splitlines()),
        "",
    ]
    return "\n".join(lines)


def _examples(count: int) -> str:
    return f"{count:,} example{'' if count == 1 else 's'}"
