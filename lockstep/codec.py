"""A state as bytes: a fixed little-endian layout, exactly invertible, never silently wrapping."""

from __future__ import annotations

import struct

from lockstep.state import FIELDS, State

# All fields are signed 64-bit except the generator state, which uses all 64 bits.
_FORMATS = {name: "q" for name in FIELDS} | {"rng": "Q"}
_STRUCT = struct.Struct("<" + "".join(_FORMATS[name] for name in FIELDS))
STATE_SIZE = _STRUCT.size
_pack = _STRUCT.pack


class StateCodecError(ValueError):
    """Bytes that are not an encoded state, or a state that cannot be encoded."""


def encode(s: State) -> bytes:
    try:
        return _pack(
            s.frame,
            s.paddle_l,
            s.paddle_r,
            s.ball_x,
            s.ball_y,
            s.ball_vx,
            s.ball_vy,
            s.score_l,
            s.score_r,
            s.serve_timer,
            s.rally,
            s.rng,
            s.over,
        )
    except struct.error as exc:
        raise StateCodecError(f"state field out of range: {exc}") from None


def decode(data: bytes) -> State:
    if len(data) != STATE_SIZE:
        raise StateCodecError(f"an encoded state is {STATE_SIZE} bytes, got {len(data)}")
    values = _STRUCT.unpack(data)
    state = State(*values)
    if state.over not in (0, 1):
        raise StateCodecError(f"field 'over' must be 0 or 1, got {state.over}")
    return state
