"""The rules of a match: one frozen, validated value, and the rules id derived from it.

All lengths are in sub-pixel units (``UNIT`` per pixel) and all speeds in units per tick, so the
simulation never needs a float. The rules id (``SIM_VERSION`` plus the encoded rules) is what two
peers and a replay must agree on before inputs mean the same game.
"""

from __future__ import annotations

import dataclasses
import hashlib
import struct
from dataclasses import dataclass

# Bump on ANY change to what `step` computes; the golden chain test pins the current behaviour.
SIM_VERSION = 1

UNIT = 256  # sub-pixel units per pixel
TICKS_PER_SECOND = 60

_RULES_FIELDS = (
    "field_w",
    "field_h",
    "paddle_w",
    "paddle_h",
    "paddle_margin",
    "paddle_speed",
    "ball_size",
    "ball_speed_start",
    "ball_speed_step",
    "ball_speed_max",
    "bounce_vy_max",
    "serve_vy_max",
    "serve_delay_frames",
    "points_to_win",
    "frame_limit",
)
_RULES_STRUCT = struct.Struct("<" + "q" * len(_RULES_FIELDS))
_RULES_ID_HEADER = struct.Struct("<I")


class RulesError(ValueError):
    """Rules that would make an unplayable or undefined game."""


@dataclass(frozen=True)
class Rules:
    """Field geometry, speeds and match length. Units are sub-pixels (1 px = 256) and ticks."""

    field_w: int = 640 * UNIT
    field_h: int = 480 * UNIT
    paddle_w: int = 10 * UNIT
    paddle_h: int = 64 * UNIT
    paddle_margin: int = 24 * UNIT  # gap between a side wall and its paddle's outer edge
    paddle_speed: int = 6 * UNIT
    ball_size: int = 8 * UNIT
    ball_speed_start: int = 5 * UNIT  # horizontal speed of a serve
    ball_speed_step: int = UNIT // 4  # added to the horizontal speed on every paddle hit
    ball_speed_max: int = 14 * UNIT  # cap of the rally speed-up
    bounce_vy_max: int = 8 * UNIT  # vertical speed when the ball meets a paddle's very end
    serve_vy_max: int = 3 * UNIT
    serve_delay_frames: int = 60  # pause before each serve
    points_to_win: int = 11
    frame_limit: int = 0  # 0: no limit; otherwise the match ends after exactly this many frames

    def __post_init__(self) -> None:
        for name in _RULES_FIELDS:
            value = getattr(self, name)
            if type(value) is not int:
                raise RulesError(f"{name} must be an int, not {type(value).__name__}")
        checks = (
            (self.field_w >= 64 * UNIT, "field_w must be at least 64 px"),
            (self.field_h >= 64 * UNIT, "field_h must be at least 64 px"),
            (self.field_w <= 1 << 40 and self.field_h <= 1 << 40, "field is too large"),
            (self.paddle_w > 0 and 0 < self.paddle_h < self.field_h, "paddle must fit the field"),
            (self.paddle_margin >= 0, "paddle_margin must be >= 0"),
            (
                2 * (self.paddle_margin + self.paddle_w) + 4 * self.ball_size < self.field_w,
                "paddles and ball must leave room between them",
            ),
            (0 < self.ball_size < self.field_h // 4, "ball_size must be positive and small"),
            (0 < self.paddle_speed < self.field_h, "paddle_speed out of range"),
            (0 < self.ball_speed_start <= self.ball_speed_max, "ball_speed_start out of range"),
            (self.ball_speed_step >= 0, "ball_speed_step must be >= 0"),
            # A ball faster than this could jump over the whole gap between the paddles in one tick;
            # contact is swept, so this bound is about keeping the game playable, not correct.
            (self.ball_speed_max < self.field_w // 4, "ball_speed_max must be below field_w / 4"),
            (0 <= self.bounce_vy_max < self.field_h // 2, "bounce_vy_max out of range"),
            (0 <= self.serve_vy_max <= self.bounce_vy_max, "serve_vy_max out of range"),
            (0 <= self.serve_delay_frames <= 600, "serve_delay_frames must be 0..600"),
            (1 <= self.points_to_win <= 999, "points_to_win must be 1..999"),
            (0 <= self.frame_limit <= 1 << 40, "frame_limit must be >= 0"),
        )
        for ok, message in checks:
            if not ok:
                raise RulesError(message)

    def replace(self, **changes: int) -> Rules:
        return dataclasses.replace(self, **changes)

    def encode(self) -> bytes:
        return _RULES_STRUCT.pack(*(getattr(self, name) for name in _RULES_FIELDS))

    @classmethod
    def decode(cls, data: bytes) -> Rules:
        """Inverse of `encode`; raises `RulesError` for a wrong size or invalid values."""
        if len(data) != _RULES_STRUCT.size:
            raise RulesError(f"encoded rules must be {_RULES_STRUCT.size} bytes, got {len(data)}")
        return cls(**dict(zip(_RULES_FIELDS, _RULES_STRUCT.unpack(data))))


RULES_SIZE = _RULES_STRUCT.size
RULES_ID_SIZE = _RULES_ID_HEADER.size + RULES_SIZE


def rules_id(rules: Rules) -> bytes:
    """`SIM_VERSION` and the rules: two peers or a replay with equal rules ids play the same game."""
    return _RULES_ID_HEADER.pack(SIM_VERSION) + rules.encode()


def split_rules_id(rid: bytes) -> tuple[int, bytes]:
    """(sim version, encoded rules) of a rules id, without validating the rules."""
    if len(rid) != RULES_ID_SIZE:
        raise RulesError(f"a rules id is {RULES_ID_SIZE} bytes, got {len(rid)}")
    (version,) = _RULES_ID_HEADER.unpack_from(rid)
    return version, rid[_RULES_ID_HEADER.size :]


def rules_digest(rules: Rules) -> str:
    """A short printable name for a rules id, for messages and `info`."""
    return hashlib.blake2b(rules_id(rules), digest_size=4).hexdigest()
