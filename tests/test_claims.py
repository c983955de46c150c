"""The regression lock: the default tour, run as the README's main job runs it, against
experiments/claims.lock.json.

Each experiment's claims must keep their locked verdicts (held, not held, inconclusive) and their
statistics inside the locked bands (a few standard errors over seeds), and every check must pass
(`experiments.framework.lock.compare`). An intentional change updates the lock in the same
commit (`python -m experiments --update-lock`), with the reason in the commit message.

The tour runs once, in a fresh interpreter that sees one device (as the main job does), and
takes most of this suite's time; `pytest -m "not claims"` leaves it out.
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

import experiments
from experiments.framework import lock, runner
from helpers import REPO_ROOT
from jaxdl.core import io

pytestmark = pytest.mark.claims


@pytest.fixture(scope="module")
def tour(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("tour")
    flags = [f for f in os.environ.get("XLA_FLAGS", "").split() if "force_host_platform_device_count" not in f]
    env = dict(os.environ, MPLBACKEND="Agg", XLA_FLAGS=" ".join(flags))
    log_path = workdir / "tour.log"
    with open(log_path, "w") as log:
        status = subprocess.run([sys.executable, "-m", "experiments", "--workdir", str(workdir), "--rerun"],
                                cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=3600).returncode
    return workdir, status, log_path.read_text()


def test_the_lock_covers_exactly_the_tour():
    assert sorted(lock.load()["experiments"]) == sorted(experiments.EXPERIMENTS)


@pytest.mark.parametrize("name", experiments.EXPERIMENTS)
def test_verdicts_and_values_hold_the_lock(tour, name):
    workdir, status, log = tour
    path = workdir / name / runner.OUTCOME
    assert path.exists(), f"{name} did not complete (tour exit status {status}):\n{log[-4000:]}"
    problems = lock.compare(lock.load(), io.load_json(path))
    assert not problems, "\n".join(problems)


def test_the_tour_report_summarises_every_experiment(tour):
    workdir, status, log = tour
    assert status == 0, log[-4000:]
    report = (workdir / "report.md").read_text()
    summary = report[report.index("## Summary"):report.index("## Lock")]
    for name in experiments.EXPERIMENTS:
        assert f"| {name} " in summary
    assert "every verdict and value as locked" in report[report.index("## Lock"):]
