"""How commands report: a line for a person on stderr-free stdout, and `--json` as the last line."""

from __future__ import annotations

import json
import sys
from typing import Any


def report(summary: str, fields: dict[str, Any], as_json: bool) -> None:
    """Print the human summary, then (with --json) one JSON object as the last stdout line."""
    print(summary, flush=True)
    if as_json:
        print(json.dumps(fields, sort_keys=True), flush=True)


def fail(message: str) -> None:
    """A one-line error for a person, on stderr."""
    print(f"pong: error: {message}", file=sys.stderr, flush=True)
