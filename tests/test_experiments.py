"""Every experiment's quick config end to end, figures and report included.

The project's rule: every experiment's quick config runs end to end in the test suite, figures
included, so that a change that breaks an experiment fails a test rather than a user's run.
The claims need not hold at the quick size (too few seeds, too little training); what is
checked is that the pipeline runs, writes its run directory, that every claim carries a finite
statistic and a verdict, and that every check passes: a check is an identity, which only a bug
can break, at any size. The verdicts at the default size are held by tests/test_claims.py.
"""
import json
import math
import os

import pytest

import experiments
from experiments import framework as fw
from experiments.framework import runner

ALL = tuple(experiments.EXPERIMENTS) + ("benchmark",)


@pytest.mark.parametrize("name", ALL)
def test_quick_config_runs_end_to_end(name, tmp_path):
    module = experiments.get_experiment(name)
    workdir = tmp_path / name
    outcome = module.main(["--size", "quick", "--workdir", str(workdir)])
    for figure in outcome["figures"]:
        with open(workdir / figure, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n", figure
    assert outcome["tables"], "an experiment must print at least one results table"
    saved = json.load(open(workdir / "claims.json"))
    assert saved["claims"] or saved["checks"]
    for claim in saved["claims"]:
        assert claim["paper"] and claim["statement"] and claim["threshold"] and claim["rule"], claim
        assert claim["verdict"] in fw.VERDICTS and math.isfinite(claim["statistic"]), claim
    failed = [check for check in saved["checks"] if not check["passed"]]
    assert not failed, failed
    report = open(workdir / "report.md").read()
    assert "## Claims" in report and "## Verdicts" in report
    assert json.load(open(workdir / "config.json"))
    assert os.path.exists(workdir / runner.OUTCOME)


@pytest.mark.parametrize("name", ALL)
def test_every_size_passes_its_declared_checks(name):
    module = experiments.get_experiment(name)
    assert module.FIELDS, "declare the config's field checks"
    for size in fw.SIZES:
        config = fw.config_for(module, size)
        fw.validate(module, config)
        assert isinstance(config.seed, int), "every experiment draws its randomness from config.seed"
    with pytest.raises(ValueError, match="size"):
        fw.config_for(module, "huge")
