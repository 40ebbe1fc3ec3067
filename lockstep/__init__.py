"""The pure core of Lockstep Pong: rules, state, simulation, encoding and the hash chain.

No clock, no I/O, no floats, no randomness but the seeded generator inside the state; a test
(`tests/test_purity.py`) enforces it.
"""

from lockstep.chain import CHAIN_SIZE, chain_next, chain_start
from lockstep.codec import STATE_SIZE, StateCodecError, decode, encode
from lockstep.game import Game, Snapshot
from lockstep.inputs import DOWN, NEUTRAL, UP, pack, unpack
from lockstep.rules import SIM_VERSION, TICKS_PER_SECOND, UNIT, Rules, RulesError, rules_id
from lockstep.sim import step
from lockstep.state import FIELDS, State, initial_state, winner

__all__ = [
    "CHAIN_SIZE",
    "DOWN",
    "FIELDS",
    "NEUTRAL",
    "SIM_VERSION",
    "STATE_SIZE",
    "TICKS_PER_SECOND",
    "UNIT",
    "UP",
    "Game",
    "Rules",
    "RulesError",
    "Snapshot",
    "State",
    "StateCodecError",
    "chain_next",
    "chain_start",
    "decode",
    "encode",
    "initial_state",
    "pack",
    "rules_id",
    "step",
    "unpack",
    "winner",
]
