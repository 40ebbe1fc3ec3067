"""Fuzz campaigns sharing one Redis example database: what one finds, the next replays first.

The Redis is a real `redis-server` (Debian's package; .ci/run installs it when it can) on a free
loopback port, without persistence; these tests skip when it or the redis client is absent.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import strategies as st

from tests.conftest import ROOT
from tools import fuzz_database
from tools.cli import main
from tools.fuzz_campaign import run_campaign
from tools.fuzz_properties import GivenProperty

START_TIMEOUT_S = 10.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_redis(port: int) -> subprocess.Popen[bytes] | None:
    """A `redis-server` on 127.0.0.1:`port`, once it says it is ready; None if it ended first
    (someone took the port in the meantime)."""
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        bufsize=0,  # read as it comes: select() must not miss what a buffer already took
    )
    assert process.stdout is not None
    said = b""
    deadline = time.monotonic() + START_TIMEOUT_S
    while (left := deadline - time.monotonic()) > 0:
        ready, _, _ = select.select([process.stdout], [], [], left)
        if not ready:
            break
        chunk = os.read(process.stdout.fileno(), 65536)
        if not chunk:  # it ended
            process.wait()
            return None
        said += chunk
        if b"Ready to accept connections" in said:
            return process
    process.kill()
    process.wait()
    pytest.fail(f"redis-server did not start within {START_TIMEOUT_S:.0f} s")


@pytest.fixture
def redis_url() -> Iterator[str]:
    """redis://127.0.0.1:PORT of a fresh, empty `redis-server`, killed at the end of the test."""
    pytest.importorskip("redis", reason="the redis client is not installed (pip install -e '.[fuzz]')")
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    for _ in range(3):  # another process may take the free port before the server does
        port = free_port()
        server = start_redis(port)
        if server is not None:
            break
    else:
        pytest.fail("redis-server would not start on a free port")
    try:
        yield f"redis://127.0.0.1:{port}"
    finally:
        server.kill()
        server.wait()
        assert server.stdout is not None
        server.stdout.close()


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HYPOTHESIS_DATABASE", raising=False)
    return tmp_path


def keys(url: str) -> list[bytes]:
    import redis

    client = redis.Redis.from_url(url)
    try:
        return sorted(client.keys("*"))
    finally:
        client.close()


# --- a deliberately broken property, defined here only ---------------------------------------------


def sum_stays_small(xs: list[int]) -> None:
    assert sum(xs) <= 1000, f"sum {sum(xs)}"


BROKEN = GivenProperty(
    "sum_stays_small",
    "the sum of a list stays small (it does not)",
    sum_stays_small,
    {"xs": st.lists(st.integers(0, 500))},
)


def campaign_in_this_process(url: str, seed: int) -> None:
    """What the child processes below run: one campaign of BROKEN on the Redis at `url`."""
    database = fuzz_database.open_database(url)
    result = run_campaign([BROKEN], 60.0, database=database.database, seed=seed)
    print(json.dumps({"examples": result.examples, "failures": [f.as_dict() for f in result.failures]}))


def campaign_in_another_process(url: str, seed: int, cwd: Path) -> dict:
    code = f"from tests.test_fuzz_redis import campaign_in_this_process as c; c({url!r}, {seed})"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("HYPOTHESIS_DATABASE", None)
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=90
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_failure_one_campaign_finds_is_replayed_first_by_a_campaign_in_another_process(redis_url, workdir):
    first = campaign_in_another_process(redis_url, 1, workdir)
    [failure] = first["failures"]
    assert failure["property"] == "sum_stays_small" and failure["error"].startswith("AssertionError: sum")
    assert keys(redis_url)  # it is in the Redis now
    assert not (workdir / ".hypothesis" / "examples").exists()  # and only there
    # Another process, other random examples (another seed): the saved one comes first and fails
    # at once, without a search.
    again = campaign_in_another_process(redis_url, 2, workdir)
    assert [f["example"] for f in again["failures"]] == [failure["example"]]
    assert again["examples"] <= 5 < first["examples"]


def test_pong_fuzz_in_two_workers_on_redis_sums_them_in_one_result(redis_url, workdir):
    env = dict(os.environ, PYTHONPATH=str(ROOT), HYPOTHESIS_DATABASE=redis_url)
    done = subprocess.run(
        [
            *(sys.executable, "-m", "tools", "fuzz", "--seconds", "1", "--workers", "2", "--seed", "0"),
            *("--only", "codec_round_trip", "--only", "replay_round_trip", "--json"),
        ],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["ok"] is True and out["workers"] == 2 and out["database"] == redis_url
    assert out["examples"] == sum(out["per_property"].values()) > 0
    assert all(n > 0 for n in out["per_property"].values())
    assert "in 2 processes; example database " + redis_url in done.stderr
    assert "2 workers" in done.stderr  # the one progress line, for both
    assert not (workdir / ".hypothesis" / "examples").exists()


def test_a_redis_that_goes_away_ends_the_campaign_with_one_line(redis_url, workdir):
    import redis

    def shut_down(x: int) -> None:
        # The first example takes the database away; the next turn needs it.
        client = redis.Redis.from_url(redis_url)
        with pytest.raises(redis.ConnectionError):
            client.shutdown(nosave=True)

    prop = GivenProperty("shut_down", "takes the Redis away", shut_down, {"x": st.integers()})
    database = fuzz_database.open_database(redis_url)
    with pytest.raises(fuzz_database.DatabaseUnavailable, match=r"^the example database failed: .*"):
        run_campaign([prop], 60.0, database=database.database, seed=0)


# --- without a Redis -----------------------------------------------------------------------------


def run_quietly(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    full = dict(os.environ, PYTHONPATH=str(ROOT), **env)
    return subprocess.run(args, cwd=cwd, env=full, capture_output=True, text=True, timeout=90)


@pytest.mark.parametrize(
    "url, message",
    [
        ("redis://127.0.0.1:1", "cannot reach Redis at redis://127.0.0.1:1: "),  # nobody listens there
        ("redis://127.0.0.1:99999", "is not a usable Redis URL"),
        ("redis://:secret@127.0.0.1:1/0", "cannot reach Redis at redis://:***@127.0.0.1:1/0: "),
    ],
)
def test_pong_fuzz_on_a_redis_it_cannot_use_says_so_in_one_line_and_exits_2(url, message, tmp_path):
    pytest.importorskip("redis")
    done = run_quietly([sys.executable, "-m", "tools", "fuzz", "--database", url, "--json"], tmp_path)
    assert done.returncode == 2, done.stderr
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("pong: error: ") and message in line and "secret" not in line
    assert json.loads(done.stdout.strip().splitlines()[-1])["exit_code"] == 2


def test_pong_fuzz_without_the_redis_client_says_how_to_install_it(workdir, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "redis", None)  # `import redis` fails as if not installed
    monkeypatch.delitem(sys.modules, "hypothesis.extra.redis", raising=False)
    assert main(["fuzz", "--database", "redis://127.0.0.1:1", "--workers", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "needs the redis client, which is not installed" in err
    assert "pip install 'lockstep-pong[fuzz]'" in err


@pytest.mark.parametrize("profile", ["dev", "fuzz"])
def test_the_dev_and_fuzz_profiles_keep_their_examples_in_redis(profile):
    """The test profiles (and HypoFuzz, which takes the default database) use the Redis named by
    HYPOTHESIS_DATABASE (connecting only when they first need it)."""
    pytest.importorskip("redis")
    probe = "import tests.conftest; from hypothesis import settings; print(repr(settings.default.database))"
    url = "redis://127.0.0.1:1/3"
    done = run_quietly(
        [sys.executable, "-c", probe], ROOT, HYPOTHESIS_PROFILE=profile, HYPOTHESIS_DATABASE=url
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("RedisExampleDatabase(") and "port=1,db=3" in done.stdout


def test_under_pytest_a_redis_nobody_answers_at_ends_the_run_at_once_with_one_line():
    pytest.importorskip("redis")
    url = "redis://127.0.0.1:1/3"
    pytest_args = [sys.executable, "-m", "pytest", "-qp", "no:cacheprovider", "--co", "tests/test_codec.py"]
    done = run_quietly(pytest_args, ROOT, HYPOTHESIS_PROFILE="dev", HYPOTHESIS_DATABASE=url)
    assert done.returncode == 2
    [line] = (done.stdout + done.stderr).strip().splitlines()
    assert line.startswith("Exit: HYPOTHESIS_DATABASE: cannot reach Redis at redis://127.0.0.1:1/3: ")
    # The `ci` profile uses no database: it does not need the Redis.
    done = run_quietly(pytest_args, ROOT, HYPOTHESIS_PROFILE="ci", HYPOTHESIS_DATABASE=url)
    assert done.returncode == 0, done.stdout + done.stderr


def test_one_redis_url_is_one_database_in_a_process():
    """HypoFuzz collects the tests again in each of its workers, which runs conftest.py again: the
    profile's database must still equal the one the tests took, or HypoFuzz skips them all
    (`differing_database`). Two Redis clients never compare equal, so a URL gives one database."""
    pytest.importorskip("redis")
    first = fuzz_database.open_database("redis://127.0.0.1:1/7", check=False).database
    assert fuzz_database.open_database("redis://127.0.0.1:1/7", check=False).database is first
    assert fuzz_database.open_database("redis://127.0.0.1:1/8", check=False).database != first
