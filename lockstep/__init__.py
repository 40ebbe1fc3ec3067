"""The pure core of Lockstep Pong: rules, state, simulation, encoding, the hash chain, and the
lockstep and rollback engines that drive any `Simulation` (Pong's `Game` is one).

No clock, no I/O, no floats, no randomness but the seeded generator inside the state; a test
(`tests/test_purity.py`) enforces it.
"""

from lockstep.chain import CHAIN_SIZE, chain_next, chain_start
from lockstep.codec import STATE_SIZE, StateCodecError, decode, encode
from lockstep.engine import (
    CHAIN_BITS,
    DEFAULT_CHAIN_EVERY,
    MAX_CHECK_LAG,
    MAX_DELAY_FRAMES,
    NO_CHECK_LAG,
    ChainToSend,
    DesyncDetected,
    Engine,
    Event,
    FrameAdvanced,
    LocalInput,
    RemoteAheadError,
    auto_delay,
    chain_bits,
)
from lockstep.game import Game, Snapshot
from lockstep.inputs import DOWN, NEUTRAL, UP, pack, unpack
from lockstep.rollback import DEFAULT_MAX_ROLLBACK, MAX_ROLLBACK, RollbackEngine, rollback_auto_delay
from lockstep.rules import SIM_VERSION, TICKS_PER_SECOND, UNIT, Rules, RulesError, rules_id
from lockstep.sim import step
from lockstep.simulation import Simulation
from lockstep.state import FIELDS, State, initial_state, winner
from lockstep.synctest import SynctestResult, run_synctest

__all__ = [
    "CHAIN_BITS",
    "CHAIN_SIZE",
    "DEFAULT_CHAIN_EVERY",
    "DEFAULT_MAX_ROLLBACK",
    "DOWN",
    "FIELDS",
    "MAX_CHECK_LAG",
    "MAX_DELAY_FRAMES",
    "MAX_ROLLBACK",
    "NEUTRAL",
    "NO_CHECK_LAG",
    "SIM_VERSION",
    "STATE_SIZE",
    "TICKS_PER_SECOND",
    "UNIT",
    "UP",
    "ChainToSend",
    "DesyncDetected",
    "Engine",
    "Event",
    "FrameAdvanced",
    "Game",
    "LocalInput",
    "RemoteAheadError",
    "RollbackEngine",
    "Rules",
    "RulesError",
    "Simulation",
    "Snapshot",
    "State",
    "StateCodecError",
    "SynctestResult",
    "auto_delay",
    "chain_bits",
    "chain_next",
    "chain_start",
    "decode",
    "encode",
    "initial_state",
    "pack",
    "rollback_auto_delay",
    "rules_id",
    "run_synctest",
    "step",
    "unpack",
    "winner",
]
