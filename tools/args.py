"""Argument types shared by the commands: each rejects bad values with a one-line argparse error."""

from __future__ import annotations

import argparse


def _int_in(text: str, low: int, high: int, what: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{what} must be a whole number, not {text!r}") from None
    if not low <= value <= high:
        raise argparse.ArgumentTypeError(f"{what} must be between {low} and {high}, not {value}")
    return value


def seed(text: str) -> int:
    return _int_in(text, 0, (1 << 64) - 1, "seed")


def frames(text: str) -> int:
    return _int_in(text, 1, 1 << 40, "frames")


def positive(text: str) -> int:
    return _int_in(text, 1, 1 << 31, "value")


def points(text: str) -> int:
    return _int_in(text, 1, 999, "points")


def seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"seconds must be a number, not {text!r}") from None
    if not 0 < value <= 7 * 24 * 3600:
        raise argparse.ArgumentTypeError(f"seconds must be positive and at most a week, not {text}")
    return value
