"""How commands report: a line for a person on stderr-free stdout, and `--json` as the last line."""

from __future__ import annotations

import json
import sys
from typing import Any


def report(summary: str, fields: dict[str, Any], as_json: bool, failed: bool = False) -> None:
    """Print the human summary (on stderr when `failed`), then with --json one JSON object, last on stdout."""
    print(summary, file=sys.stderr if failed else sys.stdout, flush=True)
    if as_json:
        print(json.dumps(fields, sort_keys=True), flush=True)


def fail(message: str) -> None:
    """A one-line error for a person, on stderr."""
    print(f"pong: error: {message}", file=sys.stderr, flush=True)
