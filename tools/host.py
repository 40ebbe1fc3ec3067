"""`pong host`: listen for one player and play a match (see tools/play.py)."""

from tools.play import add_host_arguments as add_arguments
from tools.play import run_host as run

__all__ = ["add_arguments", "run"]
