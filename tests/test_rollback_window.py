"""The F3 overlay of a rollback match: one more line, rollbacks per second and the deepest one."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")

from lockstep.game import Game
from lockstep.rules import Rules
from peer.protocol import Established
from peer.session import View

pygame = pytest.importorskip("pygame")
from peer.window import INFO, WindowFrontend  # noqa: E402

RULES = Rules()
EST = Established(RULES, 5, 1, 1, "bob", "alice", 42)


def overlay_rows(rollbacks_per_s, deepest=0):
    """The rows of the overlay's corner holding its text colour."""
    window = WindowFrontend(None, end_screen_ms=0)
    try:
        window.overlay = True
        view = View(
            "playing",
            state=Game(RULES, 5).state,
            rules=RULES,
            established=EST,
            rollbacks_per_s=rollbacks_per_s,
            deepest_rollback=deepest,
        )
        window.render(view)
        screen = window.screen
        height = screen.get_height()
        return {
            y
            for y in range(height // 2, height)
            for x in range(10, 200)
            if tuple(screen.get_at((x, y)))[:3] == INFO
        }
    finally:
        pygame.quit()


def test_the_overlay_of_a_rollback_match_has_one_more_line():
    lockstep, rollback = overlay_rows(None), overlay_rows(2.5, 3)
    assert lockstep and rollback
    # Lines are stacked from the bottom: the extra one starts about a line (22 px) higher.
    assert 15 <= min(lockstep) - min(rollback) <= 30
    assert overlay_rows(2.5, 3) != overlay_rows(0.0, 7)  # the numbers are drawn
