"""Where fuzzing keeps its examples: a directory, or one Redis that every machine of a campaign shares.

`open_database(spec)` takes what `--database` or `HYPOTHESIS_DATABASE` says: `redis://HOST:PORT[/DB]`
(or `rediss://` for TLS) is hypothesis' `RedisExampleDatabase`, anything else a directory. Used by
`pong fuzz` and its workers, and by the `dev`/`fuzz` test profiles (tests/conftest.py), which
HypoFuzz takes its database from. It imports hypothesis' database module only, and the redis client
only for a Redis URL: that client is in the `fuzz` extra, and a missing one is a clear error.
"""

from __future__ import annotations

import os
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hypothesis.database import DirectoryBasedExampleDatabase, ExampleDatabase

if TYPE_CHECKING:
    from hypothesis.extra.redis import RedisExampleDatabase

VARIABLE = "HYPOTHESIS_DATABASE"
DEFAULT_DIRECTORY = Path(".hypothesis") / "examples"
REDIS_SCHEMES = ("redis://", "rediss://")
# A Redis that does not answer ends the campaign (one line) instead of hanging it.
CONNECT_TIMEOUT_S = 5.0
REPLY_TIMEOUT_S = 30.0


# One database per Redis URL in a process. HypoFuzz collects the tests again in each worker, and
# pytest then runs conftest.py again: the profile's database must still equal the one the tests
# took the first time, and two Redis clients never compare equal.
_redis_databases: dict[str, RedisExampleDatabase] = {}


class DatabaseUnavailable(Exception):
    """The example database cannot be used; the message is one line for a person."""


@dataclass
class Database:
    database: ExampleDatabase
    where: str  # the directory, or the URL without its password: what we print and put in the JSON
    spec: str  # what to give `open_database` in another process to get the same database


def spec_from_environment(explicit: str | None = None) -> str:
    """`explicit` (a `--database`), else `HYPOTHESIS_DATABASE`, else `.hypothesis/examples`."""
    return explicit or os.environ.get(VARIABLE) or str(DEFAULT_DIRECTORY)


def is_redis(spec: str) -> bool:
    return spec.lower().startswith(REDIS_SCHEMES)


def redacted(url: str) -> str:
    """The URL without a password in it (`redis://:secret@host` -> `redis://:***@host`)."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def open_database(spec: str, *, check: bool = True) -> Database:
    """The database `spec` names. With `check`, a Redis must answer a PING now: a campaign that
    could not share what it finds must not start. A directory is made when first written."""
    if not is_redis(spec):
        return Database(DirectoryBasedExampleDatabase(os.path.abspath(spec)), spec, os.path.abspath(spec))
    where = redacted(spec)
    try:
        import redis
        from hypothesis.extra.redis import RedisExampleDatabase
    except ImportError as exc:
        if exc.name is None or not exc.name.startswith("redis"):
            raise
        raise DatabaseUnavailable(
            f"the example database {where} needs the redis client, which is not installed: "
            "pip install 'lockstep-pong[fuzz]' (in a clone: pip install -e '.[fuzz]')"
        ) from None
    database = _redis_databases.get(spec)
    if database is None:
        try:
            client: Any = redis.Redis.from_url(
                spec, socket_connect_timeout=CONNECT_TIMEOUT_S, socket_timeout=REPLY_TIMEOUT_S
            )
        except ValueError as exc:  # a bad port, an unknown option, a database that is not a number
            raise DatabaseUnavailable(
                f"the example database {where} is not a usable Redis URL: {exc}"
            ) from None
        database = _redis_databases[spec] = RedisExampleDatabase(client)
    if check:
        try:
            database.redis.ping()
        except redis.RedisError as exc:
            raise DatabaseUnavailable(f"cannot reach Redis at {where}: {describe(exc)}") from None
    return Database(database, where, spec)


def database_errors() -> tuple[type[BaseException], ...]:
    """The exceptions a database can raise mid-campaign when its storage goes away."""
    errors: tuple[type[BaseException], ...] = (OSError,)
    try:
        import redis
    except ImportError:
        return errors
    return (*errors, redis.RedisError)


def describe(error: BaseException) -> str:
    """An error as one line."""
    text = " ".join(str(error).split())
    return text or type(error).__name__
