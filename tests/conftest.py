"""Hypothesis settings profiles, chosen by the environment variable HYPOTHESIS_PROFILE.

- `ci` (the default): derandomized, so every run tries the same examples and CI never flakes.
  Derandomized runs use no example database.
- `dev`: random examples, 100 per test; failures are saved in the example database and tried
  first on the next run.
- `fuzz`: 20,000 examples per test, no deadline and no pytest timeout: long runs. It is also the
  default under HypoFuzz (`hypothesis fuzz`), which skips derandomized tests.

HYPOTHESIS_DATABASE=DIR puts the example database of `dev` and `fuzz` in DIR (default:
.hypothesis/examples in the working directory), HYPOTHESIS_DATABASE=redis://HOST:PORT[/DB] in that
Redis (tools/fuzz_database.py); workers on several machines that point it at one shared database
share what they find. `pong fuzz` uses the same variable. A Redis that cannot be used ends the run
at once with one line and exit 2.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from tools.fuzz_database import DatabaseUnavailable, is_redis, open_database

PROFILE_VARIABLE = "HYPOTHESIS_PROFILE"
DATABASE_VARIABLE = "HYPOTHESIS_DATABASE"


def _in_hypofuzz() -> bool:
    try:
        from hypofuzz.detection import in_hypofuzz_run
    except ImportError:
        return False
    return bool(in_hypofuzz_run())


_database = {}
_database_error: str | None = None  # reported by pytest_configure, where it can end the run cleanly
if _spec := os.environ.get(DATABASE_VARIABLE):
    try:  # not connected yet: the `ci` profile, which uses no database, must not need the Redis
        _database = {"database": open_database(_spec, check=False).database}
    except DatabaseUnavailable as exc:
        _database_error = str(exc)

settings.register_profile(
    "ci",
    derandomize=True,
    max_examples=60,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
# derandomize=False stated outright: Hypothesis derandomizes by default when it sees a CI
# environment variable, and `dev` and `fuzz` exist to explore.
settings.register_profile(
    "dev", derandomize=False, max_examples=100, deadline=None, print_blob=True, **_database
)
settings.register_profile(
    "fuzz",
    derandomize=False,
    max_examples=20_000,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    **_database,
)
PROFILE = os.environ.get(PROFILE_VARIABLE) or ("fuzz" if _in_hypofuzz() else "ci")
if PROFILE not in ("ci", "dev", "fuzz"):
    raise pytest.UsageError(f"{PROFILE_VARIABLE}={PROFILE!r}: choose ci, dev or fuzz")
settings.load_profile(PROFILE)


def pytest_configure(config: pytest.Config) -> None:
    """A profile that uses the example database gets one that works, or the run ends here."""
    if PROFILE == "ci" or not _spec:
        return
    problem = _database_error
    if problem is None and is_redis(_spec):
        try:
            open_database(_spec)  # a PING, on a client of its own
        except DatabaseUnavailable as exc:
            problem = str(exc)
    if problem is not None:
        pytest.exit(f"{DATABASE_VARIABLE}: {problem}", returncode=2)


def pytest_report_header() -> str:
    return f"hypothesis profile: {PROFILE} (set {PROFILE_VARIABLE}=ci|dev|fuzz)"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Long profiles run hypothesis tests far past the suite's per-test timeout: lift it."""
    if PROFILE == "fuzz":
        for item in items:
            item.add_marker(pytest.mark.timeout(0))


ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@pytest.fixture
def pong(tmp_path: Path):
    """`pong(*args)` starts a real `pong` process in `tmp_path` (tests/procs.py); every process a
    test started is killed at its end, also when an assertion failed before it finished."""
    from tests.procs import Pongs

    pongs = Pongs(tmp_path)
    yield pongs
    pongs.close()
