"""`pong fuzz`: the determinism properties as a time-boxed fuzzing campaign, or across interpreters.

    pong fuzz [--seconds S] [--only NAME ...] [--keep-going] [--seed S] [--workers N]
              [--database DIR|redis://HOST:PORT[/DB]] [--json]
    pong fuzz --interpreters [--json]

The campaign (tools/fuzz_campaign.py; in N processes, tools/fuzz_workers.py) needs hypothesis,
imported only here in `run`, so that `pong --help` stays light; `--interpreters` needs nothing but
the standard library.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from tools import args as types
from tools import exitcodes
from tools.exitcodes import CommandError
from tools.output import report, say

DEFAULT_SECONDS = 60.0
MAX_WORKERS = 1024


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--seconds",
        type=types.seconds,
        default=None,
        metavar="S",
        help=f"how long to fuzz (default {DEFAULT_SECONDS:.0f}); a failure ends it early",
    )
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NAME",
        help="fuzz only this property (repeatable); `--only list` names them",
    )
    parser.add_argument(
        "--keep-going",
        action="store_true",
        help="after a failure, keep fuzzing the other properties until the time is up",
    )
    parser.add_argument(
        "--seed",
        type=types.seed,
        default=None,
        help="draw the examples from this seed: the same turns run the same examples (for CI)",
    )
    parser.add_argument(
        "--workers",
        type=_workers,
        default=None,
        metavar="N",
        help="fuzz in N processes sharing the example database (default: one per core)",
    )
    parser.add_argument(
        "--database",
        default=None,
        metavar="DIR|URL",
        help="the example database: a directory, or redis://HOST:PORT[/DB] shared by several machines "
        "(default: $HYPOTHESIS_DATABASE, else .hypothesis/examples)",
    )
    parser.add_argument(
        "--interpreters",
        action="store_true",
        help="instead: run fixed and random scripts under every CPython >= 3.10 found and compare chains",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")


def run(args: argparse.Namespace) -> int:
    if args.interpreters:
        if (
            args.seconds is not None
            or args.only
            or args.keep_going
            or args.seed is not None
            or args.workers is not None
            or args.database is not None
        ):
            raise CommandError(
                "--interpreters takes no --seconds, --only, --keep-going, --seed, --workers or --database"
            )
        return _run_interpreters(args.json)
    return _run_campaign(args)


# --- the campaign --------------------------------------------------------------------------------


def _run_campaign(args: argparse.Namespace) -> int:
    try:
        from tools import fuzz_campaign, fuzz_database, fuzz_properties, fuzz_workers
    except ImportError as exc:
        if exc.name is None or not exc.name.startswith("hypothesis"):
            raise
        raise CommandError(
            "pong fuzz needs hypothesis, which is not installed: pip install -e '.[test]' in the clone"
        ) from None
    names = [p.name for p in fuzz_properties.PROPERTIES]
    if "list" in args.only:
        for prop in fuzz_properties.PROPERTIES:
            say(f"{prop.name:<20} {prop.summary}")
        return exitcodes.OK
    unknown = [n for n in args.only if n not in names]
    if unknown:
        raise CommandError(f"no property named {', '.join(unknown)}; choose from: {', '.join(names)}")
    properties = fuzz_properties.by_name(list(dict.fromkeys(args.only)))
    seconds = DEFAULT_SECONDS if args.seconds is None else args.seconds
    workers = fuzz_workers.default_workers() if args.workers is None else args.workers
    try:  # checked here, once: a Redis that does not answer is one line, before any worker starts
        database = fuzz_database.open_database(fuzz_database.spec_from_environment(args.database))
    except fuzz_database.DatabaseUnavailable as exc:
        raise CommandError(str(exc)) from None
    seeded = "" if args.seed is None else f", examples drawn from seed {args.seed}"
    processes = "" if workers == 1 else f" in {workers} processes"
    say(
        f"fuzzing {_properties(len(properties))} for {seconds:g} s{processes}; "
        f"example database {database.where}{seeded}",
        sys.stderr,
    )
    progress = fuzz_campaign.Progress(sys.stderr)
    try:
        if workers == 1:
            result = fuzz_campaign.run_campaign(
                properties,
                seconds,
                database=database.database,
                keep_going=args.keep_going,
                progress=progress,
                seed=args.seed,
            )
        else:
            result = fuzz_workers.run_workers(
                [p.name for p in properties],
                seconds,
                workers,
                database=database.spec,
                keep_going=args.keep_going,
                seed=args.seed,
                progress=progress,
            )
    except (fuzz_database.DatabaseUnavailable, fuzz_workers.WorkersFailed) as exc:
        raise CommandError(str(exc)) from None
    for failure in result.failures:
        say(f"FAILED: property {failure.property}: {failure.error}")
        say(f"  at {failure.where}")
        say("  minimal failing example:")
        for line in failure.example.splitlines():
            say(f"    {line}")
        if failure.regression_file:
            say(f"  regression test written to {failure.regression_file}")
    if result.failures:
        summary = (
            f"fuzz FAILED: {len(result.failures)} of {_properties(len(properties))} failed "
            f"after {result.examples:,} examples in {result.seconds:.1f} s"
        )
    elif result.interrupted:
        summary = f"fuzz interrupted after {result.examples:,} examples in {result.seconds:.1f} s, no failure"
    else:
        summary = (
            f"fuzz ok: {result.examples:,} examples of {_properties(len(properties))} in "
            f"{result.seconds:.1f} s, no failure"
        )
    if not result.failures:
        summary += "\n  " + ", ".join(f"{name} {n:,}" for name, n in result.per_property.items())
    fields: dict[str, Any] = {
        "ok": result.ok,
        "seconds": round(result.seconds, 3),
        "examples": result.examples,
        "properties": len(properties),
        "per_property": result.per_property,
        "failures": [f.as_dict() for f in result.failures],
        "interrupted": result.interrupted,
        "database": database.where,
        "seed": args.seed,
        "workers": workers,
    }
    report(summary, fields, args.json)
    if result.failures:
        return exitcodes.CHECK_FAILED
    return exitcodes.INTERRUPTED if result.interrupted else exitcodes.OK


# --- across interpreters -------------------------------------------------------------------------


def _run_interpreters(as_json: bool) -> int:
    from tools import fuzz_interpreters

    check = fuzz_interpreters.cross_check()
    interpreters = check.interpreters
    if not interpreters:
        raise CommandError("no CPython >= 3.10 found to run the scripts (not even this one?)")
    say(f"CPython >= 3.10 interpreters found: {len(interpreters)}")
    for interpreter in interpreters:
        also = [c for c in interpreter.found_as if c != interpreter.executable]
        found = f"  (as {', '.join(also)})" if also else ""
        say(f"  {interpreter.version:<9} {interpreter.executable}{found}")
        if interpreter.error:
            say(f"            could not run the scripts: {interpreter.error}")
    for skipped in check.skipped:
        say(f"  skipped   {skipped.candidate}: {skipped.reason}")
    usable = check.usable
    width = max(len(s.name) for s in check.scripts)
    say((f"{'script':<{width}}  frames  " + "  ".join(f"{i.version:<16}" for i in usable)).rstrip())
    bad = {d.script for d in check.disagreements}
    for script in check.scripts:
        chains = [i.chains.get(script.name, "?") for i in usable]
        mark = "  <- DIFFERENT" if script.name in bad else ""
        say(f"{script.name:<{width}}  {script.frames:>6}  " + "  ".join(f"{c:<16}" for c in chains) + mark)
    for d in check.disagreements:
        where = f"first at the checkpoint of frame {d.first_frame}" if d.first_frame else "only at the end"
        say(f"  {d.script}: chains differ, {where}")
    if check.disagreements or any(i.error for i in interpreters):
        summary = (
            f"interpreters FAILED: {len(check.disagreements)} of {len(check.scripts)} scripts gave different "
            "chains"
            + ("; some interpreters could not run them" if any(i.error for i in interpreters) else "")
        )
    elif not check.compared:
        only = usable[0]
        summary = (
            f"interpreters: only one CPython >= 3.10 is present ({only.version}, {only.executable}); "
            "its chains are above but there is nothing to compare them with. Install another version "
            "(e.g. `pyenv install 3.12`) to check cross-version determinism."
        )
    else:
        versions = ", ".join(i.version for i in usable)
        summary = (
            f"interpreters ok: {len(usable)} interpreters ({versions}) agree on all "
            f"{len(check.scripts)} scripts"
        )
    report(
        summary,
        {
            "ok": check.ok,
            "compared": check.compared,
            "interpreters": [i.as_dict() for i in interpreters],
            "skipped": [{"candidate": s.candidate, "reason": s.reason} for s in check.skipped],
            "scripts": [s.as_dict() for s in check.scripts],
            "disagreements": [d.as_dict() for d in check.disagreements],
        },
        as_json,
        failed=not check.ok,
    )
    return exitcodes.OK if check.ok else exitcodes.CHECK_FAILED


def _workers(text: str) -> int:
    return types.int_in(text, 1, MAX_WORKERS, "workers")


def _properties(count: int) -> str:
    return f"{count} propert{'y' if count == 1 else 'ies'}"
