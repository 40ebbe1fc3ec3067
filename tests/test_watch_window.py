"""The spectator's window under SDL's dummy driver, its texts, its chat keys; the players' overlay."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")

from lockstep.game import Game
from lockstep.rules import Rules
from lockstep.script import random_inputs
from peer.protocol import Established
from peer.session import View
from peer.spectate import WatchResult, WatchView
from replay.render import FOREGROUND, ball_rect, court_layout

pygame = pytest.importorskip("pygame")
from peer.watch_window import ALERT, WatchWindow, behind_text, end_text  # noqa: E402
from peer.window import overlay_lines  # noqa: E402

RULES = Rules()


@pytest.fixture
def window():
    w = WatchWindow(end_screen_ms=0)
    yield w
    pygame.quit()


def key(window, code, text=""):
    pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=code, mod=0, unicode=text))
    if text:
        pygame.event.post(pygame.event.Event(pygame.TEXTINPUT, text=text))
    window.handle_events()


def test_the_match_is_drawn_with_watching_and_how_far_behind(window):
    game = Game(RULES, 5)
    game.run(random_inputs(2, 500))
    window.render(WatchView("watching", "watching", game.state, RULES, ("Hana", "Jo"), 6))
    layout = court_layout(RULES, *window.screen.get_size())
    bx, by, bw, bh = layout.rect(*ball_rect(RULES, game.state))
    assert tuple(window.screen.get_at((bx + bw // 2, by + bh // 2)))[:3] == FOREGROUND
    assert behind_text(6) == "watching · 100 ms behind live"


def test_enter_opens_a_chat_line_enter_sends_it_and_escape_cancels_it(window):
    key(window, pygame.K_RETURN)
    assert window.typing == ""
    for letter in "gg":
        key(window, ord(letter), letter)
    key(window, pygame.K_RETURN)
    assert window.typed() == "gg" and window.typing is None and not window.quit
    key(window, pygame.K_RETURN)
    key(window, ord("x"), "x")
    key(window, pygame.K_ESCAPE)  # cancels the line, does not quit
    assert window.typing is None and window.typed() is None and not window.quit
    key(window, pygame.K_ESCAPE)
    assert window.quit


def test_heard_lines_show_over_the_field(window):
    window.heard("Hana", "nice shot")
    window.render(WatchView("waiting", "waiting for the match to start"))
    height = window.screen.get_height()
    strip = [
        tuple(window.screen.get_at((x, y)))[:3]
        for x in range(10, 300, 2)
        for y in range(height - 40, height - 8)
    ]
    assert ALERT in strip


def test_the_end_screen_gives_the_result_as_the_players_see_it():
    result = WatchResult("finished", "match over", followed=True, score=(11, 7), names=("Hana", "Jo"))
    result.replay = "s.replay"
    headline, lines = end_text(result)
    assert headline == "Hana won"
    assert lines[0] == "Hana  11 - 7  Jo" and "every chain check matched" in lines
    assert "replay saved to s.replay" in lines
    result = WatchResult("quit", "the other player quit", followed=True, score=(2, 3), names=("Hana", "Jo"))
    assert end_text(result)[0] == "Match ended: quit"
    desync = WatchResult("desync", "differs", desync_frame=120, score=(0, 0), names=("Hana", "Jo"))
    assert end_text(desync)[0] == "Desync at frame 120"


def test_the_players_overlay_says_how_many_watch():
    est = Established(RULES, 5, 3, 1, "bob", "alice", 42)
    assert overlay_lines(View("playing", established=est, spectators=3))[-1] == "3 watching"
    assert overlay_lines(View("playing", established=est))[-1] == "0 watching"


def test_a_players_chat_line_stops_the_paddle_and_escape_cancels_it_without_quitting():
    from lockstep.inputs import NEUTRAL, UP
    from peer.window import WindowFrontend

    player = WindowFrontend(None, end_screen_ms=0)
    try:
        state = Game(RULES, 5).state
        key(player, pygame.K_w)
        assert player.local_input(state) == UP
        key(player, pygame.K_RETURN)  # opens a line: the held key no longer moves the paddle
        for letter in "ws":
            key(player, ord(letter), letter)
        assert player.local_input(state) == NEUTRAL and player.typing == "ws"
        key(player, pygame.K_RETURN)
        assert player.typed() == "ws" and player.typing is None
        key(player, pygame.K_RETURN)
        key(player, pygame.K_ESCAPE)
        assert player.typing is None and not player.quit and player.typed() is None
        player.heard("Sam", "hi")
        player.render(
            View("playing", state=state, rules=RULES, established=Established(RULES, 5, 3, 1, "a", "b", 1))
        )
        assert [line for _, line in player.chat] == ["Sam: hi"]
    finally:
        pygame.quit()
