"""Drawing a game state: court, centre line, paddles, ball and big score digits, scaled to a surface.

Pure drawing, shared by every front end (the replay viewer, the live game window, the desync PNG):
it reads a `State` and never writes one, keeps no state of its own beyond a font cache, and
imports pygame only when called, so importing this module costs nothing for headless commands.

The court keeps the field's aspect ratio and is centred in the surface; `court_layout` gives the
mapping from simulation units to pixels, which is also what tests use to find the paddles.
"""

from __future__ import annotations

import ctypes
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lockstep.rules import Rules
from lockstep.state import State

if TYPE_CHECKING:
    import pygame

Colour = tuple[int, int, int]

GAME_WINDOW_SIZE = (960, 720)  # the game's window, and the replay viewer's

MARGIN: Colour = (24, 24, 24)  # the surface outside the court
BACKGROUND: Colour = (0, 0, 0)  # the court
LINE: Colour = (90, 90, 90)  # the dashed centre line
SCORE: Colour = (150, 150, 150)
NAME: Colour = (170, 170, 170)
FOREGROUND: Colour = (255, 255, 255)  # paddles and ball

# Seven-segment digits: which of the segments a (top), b, c (right, top to bottom), d (bottom),
# e, f (left, bottom to top) and g (middle) are lit.
_SEGMENTS = ("abcdef", "bc", "abged", "abgcd", "fgbc", "afgcd", "afgedc", "abc", "abcdefg", "abcdfg")


@dataclass(frozen=True)
class Layout:
    """Where the court sits on a surface, and the units-to-pixels mapping."""

    left: int
    top: int
    width: int
    height: int
    field_w: int
    field_h: int

    def x(self, units: int) -> int:
        return self.left + units * self.width // self.field_w

    def y(self, units: int) -> int:
        return self.top + units * self.height // self.field_h

    def rect(self, x: int, y: int, w: int, h: int) -> tuple[int, int, int, int]:
        """A box in simulation units as a pixel rectangle (left, top, width, height), at least 1x1."""
        left, top = self.x(x), self.y(y)
        return left, top, max(1, self.x(x + w) - left), max(1, self.y(y + h) - top)


def court_layout(rules: Rules, width: int, height: int) -> Layout:
    """The largest court with the field's aspect ratio that fits `width` x `height`, centred."""
    width = max(1, width)
    height = max(1, height)
    if width * rules.field_h <= height * rules.field_w:
        court_w, court_h = width, max(1, rules.field_h * width // rules.field_w)
    else:
        court_w, court_h = max(1, rules.field_w * height // rules.field_h), height
    left, top = (width - court_w) // 2, (height - court_h) // 2
    return Layout(left, top, court_w, court_h, rules.field_w, rules.field_h)


def paddle_rects(rules: Rules, state: State) -> tuple[tuple[int, int, int, int], tuple[int, int, int, int]]:
    """The two paddles in simulation units (x, y, w, h), left then right."""
    right_x = rules.field_w - rules.paddle_margin - rules.paddle_w
    return (
        (rules.paddle_margin, state.paddle_l, rules.paddle_w, rules.paddle_h),
        (right_x, state.paddle_r, rules.paddle_w, rules.paddle_h),
    )


def ball_rect(rules: Rules, state: State) -> tuple[int, int, int, int]:
    return state.ball_x, state.ball_y, rules.ball_size, rules.ball_size


def draw_state(
    surface: pygame.Surface,
    rules: Rules,
    state: State,
    names: tuple[str, str] | None = None,
    score: bool = True,
) -> Layout:
    """Draw `state` onto the whole of `surface` and return the layout used."""
    import pygame

    layout = court_layout(rules, surface.get_width(), surface.get_height())
    surface.fill(MARGIN)
    court = pygame.Rect(layout.left, layout.top, layout.width, layout.height)
    surface.fill(BACKGROUND, court)

    digit_h = max(5, layout.height // 8)
    if score:
        centre, gap, top = _score_place(layout)
        draw_number(surface, state.score_l, centre - gap, top, digit_h, SCORE, align_right=True)
        draw_number(surface, state.score_r, centre + gap, top, digit_h, SCORE, align_right=False)

    # Dashed centre line.
    line_w = max(1, layout.width // 160)
    dash = max(2, layout.height // 30)
    x = layout.left + (layout.width - line_w) // 2
    for y in range(layout.top, layout.top + layout.height, 2 * dash):
        surface.fill(LINE, pygame.Rect(x, y, line_w, min(dash, layout.top + layout.height - y)))

    if names:
        _draw_names(surface, rules, layout, names, digit_h)

    for paddle in paddle_rects(rules, state):
        surface.fill(FOREGROUND, pygame.Rect(layout.rect(*paddle)))
    surface.fill(FOREGROUND, pygame.Rect(layout.rect(*ball_rect(rules, state))))
    return layout


def _score_place(layout: Layout) -> tuple[int, int, int]:
    """(centre x, gap either side of it, top) of the score digits."""
    gap = max(4, layout.width // 24)
    return layout.left + layout.width // 2, gap, layout.top + max(2, layout.height // 24)


def _draw_names(
    surface: pygame.Surface, rules: Rules, layout: Layout, names: tuple[str, str], digit_h: int
) -> None:
    """Each name beside its score, towards its own side: the top corners are where a paddle at
    the top would cover them. A name too long for the room up to the paddle's lane is shortened."""
    centre, gap, top = _score_place(layout)
    size = max(10, layout.height // 20)
    pad = max(4, layout.width // 40)
    beside = gap + 3 * max(3, digit_h // 2) + pad  # room for three digits of the score
    lane = layout.x(rules.paddle_margin + rules.paddle_w) + pad  # right of the left paddle
    y = top + max(0, (digit_h - size) // 2)
    room = max(0, centre - beside - lane)
    draw_text(surface, names[0], centre - beside, y, size, NAME, "right", max_width=room)
    draw_text(surface, names[1], centre + beside, y, size, NAME, "left", max_width=room)


def draw_number(
    surface: pygame.Surface, value: int, x: int, y: int, height: int, colour: Colour, align_right: bool
) -> int:
    """Seven-segment digits `height` px tall starting (or, with `align_right`, ending) at x; returns
    the width drawn. No font needed, so the score looks the same everywhere."""
    text = str(max(0, value))
    width = max(3, height // 2)
    gap = max(1, height // 5)
    total = len(text) * width + (len(text) - 1) * gap
    left = x - total if align_right else x
    for i, ch in enumerate(text):
        _draw_digit(surface, int(ch), left + i * (width + gap), y, width, height, colour)
    return total


def _draw_digit(surface: pygame.Surface, digit: int, x: int, y: int, w: int, h: int, colour: Colour) -> None:
    import pygame

    t = max(1, h // 8)
    half = h // 2
    boxes = {
        "a": (x, y, w, t),
        "b": (x + w - t, y, t, half + t // 2 + 1),
        "c": (x + w - t, y + half - t // 2, t, h - half + t // 2),
        "d": (x, y + h - t, w, t),
        "e": (x, y + half - t // 2, t, h - half + t // 2),
        "f": (x, y, t, half + t // 2 + 1),
        "g": (x, y + half - t // 2, w, t),
    }
    for segment in _SEGMENTS[digit]:
        surface.fill(colour, pygame.Rect(boxes[segment]))


_fonts: dict[int, Any] = {}
_font_failed = False
# SDL_ttf hints small glyphs to whole pixels, which spaces them unevenly ("c hain"): text below
# this size is drawn SUPERSAMPLE times larger and scaled down.
SUPERSAMPLE_BELOW = 20
SUPERSAMPLE = 4
_rendered: dict[tuple[str, int, Colour], Any] = {}  # the lines drawn lately (most repeat every frame)
_RENDERED_MAX = 256


def draw_text(
    surface: pygame.Surface,
    text: str,
    x: int,
    y: int,
    size: int,
    colour: Colour,
    align: str = "left",
    max_width: int | None = None,
) -> int:
    """Text with pygame's default font, cached per size; returns the width drawn, 0 where no font is
    available (text is decoration: drawing goes on without).

    `align="left"` puts the text's top-left corner at (x, y), `"right"` its top-right corner, and
    `"centre"` its middle (both ways), for captions centred on a point. Text wider than
    `max_width` is cut short with an ellipsis.
    """
    global _font_failed
    if align not in ("left", "right", "centre"):
        raise ValueError(f"align must be left, right or centre, not {align!r}")
    if _font_failed or not text:
        return 0
    import pygame

    try:
        image = _render(text, size, colour)
        while max_width is not None and image.get_width() > max_width and len(text) > 1:
            text = text[:-2] + "…"  # one letter fewer each time, then the ellipsis
            image = _render(text, size, colour)
    except (pygame.error, OSError, ImportError, NotImplementedError):
        _font_failed = True
        return 0
    if max_width is not None and image.get_width() > max_width:
        return 0  # not even one letter fits
    width, height = image.get_width(), image.get_height()
    if align == "centre":
        surface.blit(image, (x - width // 2, y - height // 2))
    else:
        surface.blit(image, (x - width if align == "right" else x, y))
    return int(width)


def _render(text: str, size: int, colour: Colour) -> Any:
    import pygame

    key = (text, size, colour)
    image = _rendered.get(key)
    if image is not None:
        return image
    if not pygame.font.get_init():
        pygame.font.init()
    if not _fonts:
        # Fonts die with pygame.quit(); a cached one used after a re-init would crash SDL_ttf.
        pygame.register_quit(_fonts.clear)
        pygame.register_quit(_rendered.clear)
    scale = SUPERSAMPLE if size < SUPERSAMPLE_BELOW else 1
    font = _fonts.get(size * scale)
    if font is None:
        font = _fonts[size * scale] = pygame.font.Font(None, size * scale)
    image = font.render(text, True, colour)
    if scale > 1:
        w, h = image.get_size()
        image = pygame.transform.smoothscale(image, (max(1, w // scale), max(1, h // scale)))
        # smoothscale rounds down (colour 200 comes out 198, full alpha 253): put back the exact
        # colour, and alpha by about 1 % (a = a + 3a/256), so a glyph's core is the colour asked.
        boost = image.copy()
        boost.fill((0, 0, 0, 3), special_flags=pygame.BLEND_RGBA_MULT)
        image.blit(boost, (0, 0), special_flags=pygame.BLEND_RGBA_ADD)
        image.fill(colour, special_flags=pygame.BLEND_RGB_MAX)
    if len(_rendered) >= _RENDERED_MAX:
        _rendered.clear()
    _rendered[key] = image
    return image


class NoDisplayError(Exception):
    """No window can be opened here (no display, or only an invisible one); the message says why."""


def open_window(size: tuple[int, int], caption: str, resizable: bool = False) -> pygame.Surface:
    """Open the one window of a front end, or raise `NoDisplayError` with one line saying why."""
    problem = display_problem()
    if problem:
        raise NoDisplayError(problem)
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    import pygame

    # Only X11 can answer on Linux with DISPLAY set and no Wayland: left to itself, SDL would go on
    # to probe Wayland when X does not answer and print its own error line before ours.
    x11_only = (
        sys.platform.startswith("linux")
        and bool(os.environ.get("DISPLAY"))
        and not os.environ.get("WAYLAND_DISPLAY")
        and not os.environ.get("SDL_VIDEODRIVER")
    )
    if x11_only:
        os.environ["SDL_VIDEODRIVER"] = "x11"
    if sys.platform.startswith("linux") and os.environ.get("DISPLAY"):
        _watch_x_errors()  # before SDL starts: it hands the errors it does not expect on to ours
    try:
        pygame.display.init()
        pygame.font.init()
        screen = pygame.display.set_mode(size, pygame.RESIZABLE if resizable else 0)
    except pygame.error as exc:
        pygame.quit()
        if x11_only:
            raise NoDisplayError(f"no display answers at {os.environ['DISPLAY']}") from None
        raise NoDisplayError(f"cannot open a window: {exc}") from None
    finally:
        if x11_only:
            del os.environ["SDL_VIDEODRIVER"]
    problem = fallback_problem(pygame.display.get_driver())
    if problem:
        pygame.quit()
        raise NoDisplayError(problem)
    pygame.display.set_caption(caption)
    return screen


class _XErrorEvent(ctypes.Structure):
    _fields_ = [  # Xlib's XErrorEvent
        ("type", ctypes.c_int),
        ("display", ctypes.c_void_p),
        ("resourceid", ctypes.c_ulong),
        ("serial", ctypes.c_ulong),
        ("error_code", ctypes.c_ubyte),
        ("request_code", ctypes.c_ubyte),
        ("minor_code", ctypes.c_ubyte),
    ]


_X_ERROR_HANDLER = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.POINTER(_XErrorEvent))
_BAD_WINDOW, _BAD_DRAWABLE = 3, 9  # X protocol error codes
_x_handler: Any = None  # kept alive as long as Xlib may call it
_window_gone = False


def _on_x_error(display: int | None, event: Any) -> int:
    global _window_gone
    if event.contents.error_code in (_BAD_WINDOW, _BAD_DRAWABLE):
        _window_gone = True
    return 0  # handled: Xlib's default handler would print it and exit(1)


def _watch_x_errors() -> None:
    """A window destroyed from outside (`xdotool windowclose`, a killed window manager) turns SDL's
    next call on it into an X error, which Xlib's default handler answers with exit(1) and no
    goodbye. Ours notes it instead (see `window_gone`), and the front end ends as a quit."""
    global _x_handler, _window_gone
    _window_gone = False
    try:
        xlib = ctypes.CDLL("libX11.so.6")  # the one SDL loads: the handler is per process
    except OSError:
        return
    # SDL, when it starts, puts its own handler in place and passes on to the one it found there
    # (ours) every error it does not expect; when it stops, it puts ours back.
    _x_handler = _x_handler or _X_ERROR_HANDLER(_on_x_error)
    xlib.XSetErrorHandler.argtypes = [_X_ERROR_HANDLER]
    xlib.XSetErrorHandler.restype = ctypes.c_void_p
    xlib.XSetErrorHandler(_x_handler)


def window_gone() -> bool:
    """Whether the window was destroyed by someone else: nothing can be drawn any more."""
    return _window_gone


def hold_end_screen(
    pygame: Any, end_screen_ms: int, draw: Callable[[], None], stop: Callable[[], bool]
) -> None:
    """Show an end screen (`draw`) until a key, a click, the close button, `stop()` (Ctrl-C), the
    window going away, or `end_screen_ms`."""
    deadline = time.monotonic() + end_screen_ms / 1000
    clock = pygame.time.Clock()
    while time.monotonic() < deadline and not stop():
        for event in pygame.event.get():
            if event.type in (pygame.QUIT, pygame.KEYDOWN, pygame.MOUSEBUTTONDOWN):
                return
        if window_gone():
            return
        draw()
        pygame.display.flip()
        clock.tick(30)


def fallback_problem(driver: str) -> str | None:
    """Why a window that did open is useless: SDL fell back to an invisible driver by itself.

    With DISPLAY set but no X server answering, SDL quietly picks "offscreen": the game would run
    in a window nobody can see. Only a driver chosen on purpose (SDL_VIDEODRIVER) may be invisible.
    """
    if driver in ("offscreen", "dummy") and not os.environ.get("SDL_VIDEODRIVER"):
        where = os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY") or "?"
        return f"no display answers at {where} (SDL could only open an invisible window)"
    return None


def display_problem() -> str | None:
    """Why no window can be opened here, judged from the environment alone (None: try it).

    Every front end (the live window, the replay viewer) asks this before importing pygame.
    """
    if os.environ.get("SDL_VIDEODRIVER"):
        return None
    if sys.platform.startswith(("win", "darwin")):
        return None
    if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        return None
    return "no display (DISPLAY is not set)"
