"""`pong fuzz --workers N`: one campaign in N processes sharing the example database, summed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import strategies as st

from tests.conftest import ROOT
from tools import fuzz_properties
from tools.fuzz_campaign import CampaignResult, Failure
from tools.fuzz_properties import GivenProperty
from tools.fuzz_workers import WorkersFailed, _sum, _Worker, default_workers, run_workers, worker_main


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HYPOTHESIS_DATABASE", raising=False)
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # the workers import this module
    return tmp_path


def sum_stays_small(xs: list[int]) -> None:
    assert sum(xs) <= 1000, f"sum {sum(xs)}"


BROKEN = GivenProperty(
    "sum_stays_small",
    "the sum of a list stays small (it does not)",
    sum_stays_small,
    {"xs": st.lists(st.integers(0, 500))},
)


def worker(argv: Sequence[str]) -> None:
    """A worker that also knows BROKEN (run by the workers of the tests below)."""
    fuzz_properties.PROPERTIES = (*fuzz_properties.PROPERTIES, BROKEN)
    sys.exit(worker_main(argv))


WORKER = (
    sys.executable,
    "-c",
    "import sys; from tests.test_fuzz_workers import worker; worker(sys.argv[1:])",
)


def test_a_failure_in_one_worker_ends_the_campaign_of_all_with_its_minimal_example(workdir):
    result = run_workers(
        ["sum_stays_small", "codec_round_trip"],
        60.0,
        2,
        database=str(workdir / "db"),
        seed=0,
        command=WORKER,
    )
    [failure] = result.failures  # one, even when both workers found it
    assert failure.property == "sum_stays_small" and failure.example.startswith("sum_stays_small(")
    assert failure.error.startswith("AssertionError: sum 10")  # shrunk to just over 1000
    assert failure.regression_file == os.path.join(".", "fuzz-regression-sum_stays_small.py")
    assert (workdir / failure.regression_file).is_file()
    assert result.seconds < 60 and not result.interrupted  # the failure ended it, not the time
    assert result.examples == sum(result.per_property.values()) > 0
    assert any((workdir / "db").iterdir())  # in the shared database, for the next campaign


def test_a_worker_that_cannot_run_is_one_line(workdir):
    with pytest.raises(
        WorkersFailed, match=r"^worker 1 ended without a result \(exit 1\): KeyError: 'nothing'$"
    ):
        run_workers(["nothing"], 60.0, 1, database=str(workdir / "db"), command=WORKER)


def test_the_sum_of_the_workers_keeps_one_failure_per_property():
    def worker_with(
        per_property: dict[str, int], failed: Sequence[str], interrupted: bool = False
    ) -> _Worker:
        done = _Worker(0, subprocess.Popen([sys.executable, "-c", ""]))
        done.process.wait()
        done.result = CampaignResult(
            1.0,
            sum(per_property.values()),
            per_property,
            [Failure(name, "AssertionError", "here", f"{name}()", None) for name in failed],
            interrupted,
            turns=3,
        )
        return done

    a = worker_with({"p": 5, "q": 1}, ["q"])
    b = worker_with({"p": 7, "q": 2}, ["q", "p"], interrupted=True)
    total = _sum([a, b], ["p", "q"], 2.5, interrupted=False)
    assert total.per_property == {"p": 12, "q": 3} and total.examples == 15
    assert [f.property for f in total.failures] == ["q", "p"]
    assert total.interrupted and total.turns == 6 and total.seconds == 2.5


def start_pong_fuzz(*args: str, cwd: Path) -> tuple[subprocess.Popen[str], list[str]]:
    """`pong fuzz ARGS` in its own process group, once its progress line says the workers run."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tools", "fuzz", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert process.stderr is not None
    said: list[str] = []
    while not (said and said[-1].startswith("fuzz: ")):  # a worker's first count: it has run examples
        line = process.stderr.readline()
        assert line, f"pong fuzz ended early: {said}"
        said.append(line)
    return process, said


@pytest.mark.parametrize("how", ["SIGTERM to pong alone", "Ctrl-C to the whole group"])
def test_a_stop_signal_ends_every_worker_and_reports_what_they_ran(how, workdir):
    process, _ = start_pong_fuzz(
        "--seconds", "600", "--workers", "2", "--only", "codec_round_trip", "--json", cwd=workdir
    )
    try:
        if how.startswith("SIGTERM"):
            process.send_signal(signal.SIGTERM)
        else:
            os.killpg(process.pid, signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode == 130, err
    result = json.loads(out.strip().splitlines()[-1])
    assert result["interrupted"] is True and result["ok"] is False and result["workers"] == 2
    assert result["examples"] == result["per_property"]["codec_round_trip"] > 0
    assert "fuzz interrupted after" in out and "Traceback" not in err


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="no CPU affinity here")
def test_the_default_is_one_worker_per_core_this_process_may_use():
    assert default_workers() == len(os.sched_getaffinity(0)) >= 1
