"""The hash chain: one 8-byte value that certifies a whole history of states.

chain[0] = H(rules_id || seed) and chain[f] = H(chain[f-1] || encode(state_f)), H = BLAKE2b-64.
"""

from __future__ import annotations

import hashlib
import struct

from lockstep.codec import encode
from lockstep.rules import Rules, rules_id
from lockstep.state import State

CHAIN_SIZE = 8
_blake2b = hashlib.blake2b


def chain_start(rules: Rules, seed: int) -> bytes:
    return _blake2b(rules_id(rules) + struct.pack("<Q", seed), digest_size=CHAIN_SIZE).digest()


def chain_next(prev: bytes, state: State) -> bytes:
    return _blake2b(prev + encode(state), digest_size=CHAIN_SIZE).digest()
