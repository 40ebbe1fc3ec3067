"""The game's only source of randomness: a 64-bit integer generator whose whole state is one int.

The state lives in the game state (`State.rng`), so saving, restoring, encoding and hashing a state
covers the generator too. PCG-style LCG with the high bits as output: tiny, exact, and the same on
every Python because it is plain integer arithmetic.
"""

from __future__ import annotations

MASK64 = (1 << 64) - 1
_MUL = 6364136223846793005
_INC = 1442695040888963407


def seed_state(seed: int) -> int:
    """Spread any non-negative seed into a well-mixed 64-bit generator state (splitmix64)."""
    z = (seed + 0x9E3779B97F4A7C15) & MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


def next_state(rng: int) -> int:
    return (rng * _MUL + _INC) & MASK64


def output(rng: int) -> int:
    """32 well-mixed bits of a generator state."""
    return rng >> 32
