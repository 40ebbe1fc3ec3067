"""How commands report: a line for a person on stderr-free stdout, and `--json` as the last line."""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import sys
from typing import Any, TextIO

from tools import stopping


def prepare_streams() -> None:
    """Text that is not valid UTF-8 (a file name, a --name from a Latin-1 terminal) is printed
    escaped: a line we cannot encode must not cost a traceback or a match."""
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="backslashreplace")


def say(line: str, file: TextIO | None = None) -> None:
    """Print one line. A reader that went away (`pong host ... | head -1`, a closed terminal) must
    not end a match half-way and lose its replay: the stream is pointed at /dev/null and the work
    goes on."""
    stream = file if file is not None else sys.stdout
    try:
        print(line, file=stream, flush=True)
    except OSError as exc:
        if exc.errno not in (errno.EPIPE, errno.EIO):  # EIO: the terminal itself is gone (SIGHUP)
            raise
        with contextlib.suppress(OSError, ValueError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, stream.fileno())  # later lines and the flush at exit go nowhere, quietly
            os.close(devnull)


def report(summary: str, fields: dict[str, Any], as_json: bool, failed: bool = False) -> None:
    """Print the human summary (on stderr when `failed`), then with --json one JSON object, last on stdout.

    The work is done: from here on stop signals are ignored, so a late Ctrl-C can neither cut the
    result short nor turn it into "interrupted" (tools/stopping.py; `tools.cli.main` releases the
    hold when it returns to an in-process caller, who otherwise calls `stopping.release()`)."""
    stopping.hold()
    say(summary, sys.stderr if failed else sys.stdout)
    if as_json:
        say(json.dumps(fields, sort_keys=True))


ERROR_PREFIX = "pong: error: "  # every command's errors start so


def fail(message: str) -> None:
    """A one-line error for a person, on stderr."""
    say(f"{ERROR_PREFIX}{message}", sys.stderr)
