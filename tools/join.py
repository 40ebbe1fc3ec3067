"""`pong join HOST:PORT`: join a hosted match (see tools/play.py)."""

from tools.play import add_join_arguments as add_arguments
from tools.play import run_join as run

__all__ = ["add_arguments", "run"]
