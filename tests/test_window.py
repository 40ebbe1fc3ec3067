"""The game window under SDL's dummy driver: screens, pixels, and the real app loop driven by keys."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")

from lockstep.game import Game
from lockstep.inputs import DOWN, unpack
from lockstep.rules import Rules
from lockstep.script import random_inputs
from peer.protocol import Established, Role
from peer.session import Session, SessionOptions, SessionResult, View
from replay.reader import read_replay
from replay.render import FOREGROUND, SCORE, ball_rect, court_layout, paddle_rects

pygame = pytest.importorskip("pygame")
from peer.window import ALERT, WindowFrontend, in_sync_text, result_text  # noqa: E402

RULES = Rules()
EST = Established(RULES, 5, 3, 1, "bob", "alice", 42)


@pytest.fixture
def window():
    w = WindowFrontend(None, end_screen_ms=0)
    yield w
    pygame.quit()


def pixel(surface, xy):
    return tuple(surface.get_at(xy))[:3]


def centre(rect):
    left, top, width, height = rect
    return left + width // 2, top + height // 2


def colours_in(surface, box):
    left, top, width, height = box
    return {pixel(surface, (x, y)) for x in range(left, left + width, 2) for y in range(top, top + height, 2)}


def played_state(frames=700, seed=6):
    game = Game(RULES, 5)
    game.run(random_inputs(seed, frames))
    return game.state


def test_paddles_and_ball_are_drawn_where_the_state_puts_them(window):
    state = played_state()
    window.render(View("playing", state=state, rules=RULES, established=EST))
    layout = court_layout(RULES, *window.screen.get_size())
    for box in (*paddle_rects(RULES, state), ball_rect(RULES, state)):
        assert pixel(window.screen, centre(layout.rect(*box))) == FOREGROUND
    # Just beside the ball (outside it and the centre line) is the empty court.
    bx, by, bw, bh = layout.rect(*ball_rect(RULES, state))
    assert pixel(window.screen, (bx + bw + 6, by + bh // 2)) != FOREGROUND


def test_the_score_area_shows_the_score_of_the_state(window):
    state = played_state()
    layout = court_layout(RULES, *window.screen.get_size())
    score_box = (layout.left + layout.width // 3, layout.top, layout.width // 3, layout.height // 5)
    shots = []
    for score_l in (state.score_l, state.score_l, state.score_l + 1):
        changed = state.copy()
        changed.score_l = score_l
        window.render(View("playing", state=changed, rules=RULES, established=EST))
        shots.append(pygame.image.tostring(window.screen.subsurface(score_box), "RGB"))
        assert SCORE in colours_in(window.screen, score_box)
    assert shots[0] == shots[1] != shots[2]


def test_rendering_never_changes_the_state(window):
    state = played_state()
    before = state.copy()
    window.overlay = True
    window.render(View("playing", state=state, rules=RULES, established=EST, stalled_ms=500))
    assert state == before


def test_the_waiting_screen_shows_its_text(window):
    window.render(View("waiting", "waiting for a player on port 7777", "pong join myhost:7777"))
    middle = (
        window.screen.get_width() // 4,
        window.screen.get_height() // 2 - 30,
        window.screen.get_width() // 2,
        60,
    )
    assert FOREGROUND in colours_in(window.screen, middle)
    blank = pygame.Surface(window.screen.get_size())
    blank.fill((16, 16, 16))
    window.render(View("waiting", "", ""))
    assert pygame.image.tostring(window.screen, "RGB") != pygame.image.tostring(blank, "RGB")


def test_screen_text_uses_the_cached_fonts(window, monkeypatch):
    """Screens are redrawn every frame: their text must not build a new font each time."""
    view = View("waiting", "waiting for a player on port 7777", "pong join myhost:7777")
    result = SessionResult("finished", "match over", False, frames=9, score=(3, 11), local_slot=1)

    def draw_both():
        window.render(view)
        window.render_end(*result_text(result))

    draw_both()
    made = []
    real_font = pygame.font.Font
    monkeypatch.setattr(pygame.font, "Font", lambda *args: made.append(args) or real_font(*args))
    draw_both()
    assert made == []


def test_a_stall_shows_waiting_for_peer_only_after_100ms(window):
    state = played_state()
    h = window.screen.get_height()
    band = (0, h // 2 - 20, window.screen.get_width(), 40)
    window.render(View("playing", state=state, rules=RULES, established=EST, stalled_ms=50))
    assert ALERT not in colours_in(window.screen, band)
    window.render(View("playing", state=state, rules=RULES, established=EST, stalled_ms=150))
    assert ALERT in colours_in(window.screen, band)


def test_a_dropped_connection_says_it_is_reconnecting_over_the_field(window):
    state = played_state()
    h = window.screen.get_height()
    band = (0, h // 2 - 20, window.screen.get_width(), 40)
    message = "connection lost — reconnecting, 17 s"
    window.render(View("reconnecting", message, state=state, rules=RULES, established=EST))
    assert ALERT in colours_in(window.screen, band)
    window.render(View("playing", state=state, rules=RULES, established=EST))
    assert ALERT not in colours_in(window.screen, band)


def test_the_end_screen_says_who_won(window):
    result = SessionResult(
        "finished", "match over", False, frames=9, score=(3, 11), local_slot=1, replay="m.replay"
    )
    assert result_text(result, ("bob", "alice")) == (
        "You won!",
        ["bob  3 - 11  alice", "replay saved to m.replay"],
    )
    window.render(View("playing", state=played_state(), rules=RULES, established=EST))
    before = pygame.image.tostring(window.screen, "RGB")
    window.render_end(*result_text(result))
    assert pygame.image.tostring(window.screen, "RGB") != before
    w, h = window.screen.get_size()
    assert FOREGROUND in colours_in(window.screen, (w // 3, h // 2 - 110, w // 3, 70))


@pytest.mark.parametrize(
    "result, headline, lines",
    [
        (
            SessionResult("quit", "the other player quit", True, score=(2, 1), replay="r.replay"),
            "The other player left",
            ["bob  2 - 1  alice", "replay saved to r.replay"],
        ),
        (
            SessionResult("peer_timeout", "no input from the peer for 5000 ms", True, score=(0, 0)),
            "Connection lost",
            ["bob  0 - 0  alice", "no input from the peer for 5000 ms"],
        ),
    ],
)
def test_the_end_screen_says_each_thing_once(result, headline, lines):
    shown = result_text(result, ("bob", "alice"))
    assert shown == (headline, lines)
    assert len(set(shown[1])) == len(shown[1])


class Screens(WindowFrontend):
    """Counts end screens drawn (each would hold the window open); with `forbidden`, the first
    one fails the test at once rather than keeping the window for an hour."""

    def __init__(self, forbidden=False):
        super().__init__(None, end_screen_ms=3_600_000)
        self.forbidden = forbidden
        self.end_screens = 0

    def render_end(self, headline, lines):
        assert not self.forbidden, f"an end screen was drawn: {headline}"
        self.end_screens += 1
        super().render_end(headline, lines)


def test_the_quitters_window_closes_at_once():
    window = Screens(forbidden=True)
    window.finished(SessionResult("quit", "you quit", False, score=(1, 0), replay="r.replay"))
    assert window.end_screens == 0 and not pygame.display.get_init()


def test_a_ctrl_c_on_the_end_screen_closes_it():
    window = Screens(forbidden=True)
    window.quit = True  # what the signal handler sets
    window.finished(SessionResult("quit", "the other player quit", True, score=(1, 0)))
    assert window.end_screens == 0 and not pygame.display.get_init()


def test_an_ended_match_shows_its_end_screen_until_a_key(monkeypatch):
    window = Screens()
    pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=pygame.K_SPACE, mod=0))
    result = SessionResult("finished", "match over", False, score=(11, 3), local_slot=0)
    drawn = []
    real_get = pygame.event.get
    monkeypatch.setattr(pygame.event, "get", lambda: real_get() if drawn.append(1) or len(drawn) > 1 else [])
    window.finished(result)  # one screen drawn, then the key closes it
    assert window.end_screens == 1 and not pygame.display.get_init()


def test_a_window_destroyed_from_outside_is_a_quit(window, monkeypatch):
    import ctypes

    from replay import render

    monkeypatch.setattr(render, "_window_gone", False)  # and so it is again after the test
    event = render._XErrorEvent(error_code=render._BAD_WINDOW)
    assert render._on_x_error(None, ctypes.pointer(event)) == 0  # handled: Xlib does not exit
    assert render.window_gone()
    window.handle_events()
    assert window.quit_requested()


def test_the_own_paddle_is_marked_beside_it_on_its_wall_side(window):
    state = played_state()
    for slot in (0, 1):
        est = Established(RULES, 5, 3, slot, "me", "you", 42)
        window.render(View("playing", state=state, rules=RULES, established=est))
        layout = court_layout(RULES, *window.screen.get_size())
        x, y, w, h = layout.rect(*paddle_rects(RULES, state)[slot])
        lane = layout.x(RULES.paddle_margin) - layout.left
        near = (layout.left, y, lane, h) if slot == 0 else (x + w, y, lane, h)
        far = (x + w, y, lane, h) if slot == 0 else (layout.left, y, lane, h)
        other = (layout.left + layout.width - lane if slot == 0 else layout.left, y, lane, h)
        assert ALERT in colours_in(window.screen, near)
        assert ALERT not in colours_in(window.screen, far) | colours_in(window.screen, other)


def test_the_overlay_says_in_sync_at_frame_not_a_chain(window):
    assert in_sync_text("208:0faa00112233aabb") == "in sync at frame 208"
    assert in_sync_text("") == "not in sync yet"


def test_f3_toggles_the_overlay_and_escape_quits(window):
    pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=pygame.K_F3, mod=0))
    window.handle_events()
    assert window.overlay and not window.quit
    pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=pygame.K_ESCAPE, mod=0))
    window.handle_events()
    assert window.quit_requested()


class KeyDrivenWindow(WindowFrontend):
    """Holds S (down) from the start; checks the picture against the state as it goes."""

    def __init__(self):
        super().__init__(None, end_screen_ms=0)
        self.checked = 0

    def started(self, established):
        super().started(established)
        pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=pygame.K_s, mod=0))

    def show(self, view):
        super().show(view)
        if view.state is not None and view.rules is not None:
            self.render(view)
            layout = court_layout(view.rules, *self.screen.get_size())
            for box in paddle_rects(view.rules, view.state):
                assert pixel(self.screen, centre(layout.rect(*box))) == FOREGROUND
            self.checked += 1


def test_the_app_loop_moves_the_local_paddle_as_the_keys_say(pong, tmp_path):
    host = pong("host", "--port", "0", "--headless", "--bot", "tracker", "--frames", "150", "--json")
    port = host.port()
    frontend = KeyDrivenWindow()
    record = str(tmp_path / "window.replay")
    result = Session(
        SessionOptions(Role.JOINER, port=port, record=record), frontend, log=lambda line: None
    ).run()
    assert result.result == "finished", result
    assert host.finish()[0] == 0
    assert frontend.checked > 10
    replay = read_replay(record)
    slot = result.local_slot
    mine = [unpack(i)[slot] for i in replay.frame_inputs]
    assert mine[: replay.input_delay] == [0] * replay.input_delay  # frames below the delay are neutral
    assert all(i == DOWN for i in mine[replay.input_delay :])
    final = Game(replay.rules, replay.seed)
    final.run(replay.frame_inputs)
    paddle = final.state.paddle_r if slot == 1 else final.state.paddle_l
    assert paddle == RULES.field_h - RULES.paddle_h  # held down all match: at the bottom


@pytest.mark.parametrize(
    "display, why",
    [
        (None, "no display (DISPLAY is not set)"),
        # SDL, left to itself, would also probe Wayland and print its XDG_RUNTIME_DIR complaint.
        pytest.param(
            ":77",  # no X server there
            "no display answers at :77",
            marks=pytest.mark.skipif(not sys.platform.startswith("linux"), reason="X11 is Linux's here"),
        ),
    ],
)
def test_without_a_display_the_window_commands_say_so_in_one_line(tmp_path, display, why):
    hidden = ("DISPLAY", "WAYLAND_DISPLAY", "SDL_VIDEODRIVER", "XDG_RUNTIME_DIR")
    env = {k: v for k, v in os.environ.items() if k not in hidden}
    if display:
        env["DISPLAY"] = display
    out = subprocess.run(
        [sys.executable, "-m", "tools", "host", "--port", "0"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        f"pong: error: {why}; use --headless --bot tracker to play without a window"
    ]


@pytest.mark.skipif(not (shutil.which("Xvfb") and shutil.which("xdotool")), reason="needs Xvfb and xdotool")
def test_two_real_windows_under_xvfb_play_a_match_driven_by_keys(tmp_path):
    from tests.xvfb import two_window_match

    result = two_window_match(tmp_path, frames=150)
    assert result["host"]["result"] == result["joiner"]["result"] == "finished"
    assert result["host"]["final_chain"] == result["joiner"]["final_chain"]
    assert result["joiner_moved"], "the joiner's paddle must follow the keys sent by xdotool"


def test_an_invisible_fallback_window_is_refused_unless_asked_for(monkeypatch):
    from replay.render import fallback_problem

    monkeypatch.delenv("SDL_VIDEODRIVER", raising=False)
    monkeypatch.setenv("DISPLAY", ":98")
    assert "no display answers at :98" in fallback_problem("offscreen")
    assert fallback_problem("x11") is None
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")  # tests and headless rendering choose it on purpose
    assert fallback_problem("dummy") is None


@pytest.mark.skipif(not (shutil.which("Xvfb") and shutil.which("xdotool")), reason="needs Xvfb and xdotool")
def test_a_window_closed_from_outside_ends_the_match_as_a_quit(tmp_path):
    """`xdotool windowclose` destroys the window under SDL: no X error and exit 1, but a quit."""
    from tests.procs import Pong
    from tests.xvfb import start_xvfb, xdotool

    server, display = start_xvfb()
    env: dict[str, str | None] = {"DISPLAY": display, "SDL_VIDEODRIVER": None}
    host = joiner = None
    try:
        host = Pong("host", "--port", "0", "--json", "--record", "host.replay", cwd=tmp_path, env=env)
        port = host.port()
        joiner = Pong("join", f"127.0.0.1:{port}", "--headless", "--bot", "tracker", "--json", cwd=tmp_path)
        host.wait_line("vs ")
        window = xdotool(display, "search", "--sync", "--onlyvisible", "--pid", str(host.pid)).splitlines()[0]
        xdotool(display, "windowclose", window)
        code, result = host.finish(timeout=30)
        assert "X Error" not in host.stderr and "Traceback" not in host.stderr
        assert code == 0 and result is not None and result["result"] == "quit"
        joiner_code, joiner_result = joiner.finish(timeout=30)
        assert joiner_code == 3 and joiner_result is not None and joiner_result["result"] == "quit"
    finally:
        for proc in (host, joiner):
            if proc is not None:
                proc.close()
        server.kill()
        server.wait()
