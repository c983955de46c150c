"""Every experiment's quick config end to end, figures and report included (STYLE.md rule 11).

The claims need not hold at the quick size; what is checked is that the pipeline runs, writes
its run directory, and that each claim compares a finite measured number with its threshold.
"""
import json
import os

import pytest

import experiments
from experiments import common

ALL = tuple(experiments.EXPERIMENTS) + ("benchmark",)


@pytest.mark.parametrize("name", ALL)
def test_quick_config_runs_end_to_end(name, tmp_path):
    module = experiments.get_experiment(name)
    workdir = str(tmp_path / name)
    result = module.main(["--size", "quick", "--workdir", workdir])
    for figure in result["figures"]:
        path = figure if os.path.isabs(figure) else os.path.join(workdir, figure)
        with open(path, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n", figure
    assert result["tables"], "an experiment must print at least one results table"
    claims = json.load(open(os.path.join(workdir, "claims.json")))
    assert claims and len(claims) == len(result["claims"])
    for claim in claims:
        assert claim["paper"] and claim["claim"] and claim["expected"]
        assert "nan" not in claim["measured"].lower(), claim
    report = open(os.path.join(workdir, "report.md")).read()
    assert "| Paper" in report
    assert json.load(open(os.path.join(workdir, "config.json")))


@pytest.mark.parametrize("name", ALL)
def test_sizes_and_bad_size(name):
    module = experiments.get_experiment(name)
    for size in common.SIZES:
        assert module.get_config(size).to_dict()
    with pytest.raises(ValueError, match="size"):
        module.get_config("huge")


def test_bad_config_value_names_the_field(tmp_path):
    from experiments import optimizers

    config = optimizers.get_config("quick")
    config.epochs = 0
    with pytest.raises(ValueError, match="epochs"):
        optimizers.run(config, str(tmp_path))
    config = optimizers.get_config("quick")
    config.learning_rates.adam = -1.0
    with pytest.raises(ValueError, match="learning_rates.adam"):
        optimizers.run(config, str(tmp_path))
