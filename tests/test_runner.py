"""Tests of the experiment framework (experiments.reporting and experiments.cli, used through
the facade experiments.common) and the tour (python -m experiments).

Fake experiment modules stand in for the real ones, so these tests only exercise the runner.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import types

import ml_collections
import numpy as np
import pytest
from absl import flags

import experiments
from experiments import __main__ as tour
from experiments import common
from experiments.common import Claim
from jaxdl import io

FAKE_PNG = b"\x89PNG\r\n\x1a\n fake"


def make_experiment(name: str = "fake", error: Exception | None = None) -> types.ModuleType:
    """A module following the experiment protocol; `run` raises `error` if given."""
    module = types.ModuleType(f"fake_experiments.{name}")
    module.NAME = name
    module.DESCRIPTION = f"A fake experiment called {name}."

    def get_config(size: str = "default") -> ml_collections.ConfigDict:
        common.check_size(size)
        config = ml_collections.ConfigDict()
        config.steps = 3 if size == "quick" else 100
        config.learning_rate = 0.1
        config.use_bias = True
        config.widths = (4, 8)
        config.optimizer = "sgd"
        config.datasets = ("moons",)
        config.model = ml_collections.ConfigDict({"width": 2, "activation": "relu"})
        return config

    def run(config, run_dir):
        if error is not None:
            raise error
        steps = np.arange(config.steps)
        losses = 1.0 / (1.0 + steps)
        # Stand-in bytes: the runner only links figures; plotting is tested in test_io.
        io.atomic_write_bytes(run_dir.figure_path("loss"), FAKE_PNG)
        table = common.format_table([{"step": int(s), "loss": float(l)}
                                     for s, l in zip(steps, losses)])
        return {"tables": {"losses": table}, "figures": [run_dir.figure_path("loss")],
                "final_loss": float(losses[-1]), "config": config, "run_dir": run_dir}

    def claims(result):
        return [
            Claim.at_most("Fake 2024", "the loss decreases", result["final_loss"], 1.0),
            Claim.at_least("Fake 2024", "the loss reaches 10", result["final_loss"], 10.0),
        ]

    module.get_config, module.run, module.claims = get_config, run, claims
    module.main = lambda argv=None: common.experiment_main(module, argv)
    return module


# ----------------------------------------------------------------------------- claims and tables


def test_claim_check_formats_and_judges():
    claim = Claim.check("P 2020", "accuracy", ">= 97%", 0.981, lambda v: v >= 0.97, "{:.1%}")
    assert claim == Claim("P 2020", "accuracy", ">= 97%", "98.1%", True)
    assert not Claim.check("P", "c", "!= 1", math.nan, lambda v: v != 1).held
    assert Claim.at_least("P", "c", np.float32(0.5), 0.6).expected == ">= 0.600"
    assert not Claim.at_least("P", "c", np.float32(0.5), 0.6).held
    assert Claim.at_most("P", "c", 0.5, 0.6).held
    with pytest.raises(dataclasses.FrozenInstanceError):
        claim.held = False


def test_format_table_from_dicts_and_sequences():
    text = common.format_table([{"name": "a", "loss": 0.123456}, {"name": "bb", "acc": np.float32(1)}])
    lines = text.splitlines()
    assert lines[0].split("|")[1:-1] == [" name ", " loss   ", " acc "]
    assert set(lines[1]) == {"|", "-"}
    assert "0.1235" in lines[2] and lines[3].rstrip().endswith("| 1   |")
    assert len({len(line) for line in lines}) == 1  # Columns are aligned.
    text = common.format_table(["n", "s"], [[1, "x|y"], [np.int64(2), 0.5]], float_format="{:.2f}")
    assert text.splitlines()[2:] == ["| 1   | x\\|y |", "| 2   | 0.50 |"]
    with pytest.raises(ValueError, match="headers, rows"):
        common.format_table([[1, 2]])
    with pytest.raises(ValueError, match="row 0"):
        common.format_table(["a"], [[1, 2]])


def test_check_size_and_require():
    common.check_size("quick")
    with pytest.raises(ValueError, match="'huge'.*quick, default, full"):
        common.check_size("huge")
    common.require(True, "lr", "a positive learning rate", 0.1)
    with pytest.raises(ValueError, match=r"^config\.lr must be a positive learning rate, got -1$"):
        common.require(False, "lr", "a positive learning rate", -1)


def test_claims_table():
    text = common.claims_table([Claim("A 2020", "c1", ">= 1", "2", True),
                                Claim("B 2021", "c2", "<= 1", "2", False)])
    header, rule, first, second = text.splitlines()
    assert [h.strip() for h in header.split("|")[1:-1]] == [
        "Paper", "Claim", "Expected", "Measured", "Held"]
    assert first.split("|")[-2].strip() == "yes" and second.split("|")[-2].strip() == "NO"


# ----------------------------------------------------------------------------- overrides


def parse_config(*arguments: str) -> ml_collections.ConfigDict:
    """The config `parse_args` builds from `arguments` for the fake experiment."""
    return common.parse_args(make_experiment(), list(arguments)).config


@pytest.mark.parametrize("arguments, field, expected", [
    (["--config.steps=7"], "steps", 7),
    (["--config.steps", "7"], "steps", 7),
    (["--config.learning_rate=1e-3"], "learning_rate", 0.001),
    (["--config.learning_rate=2"], "learning_rate", 2.0),
    (["--config.use_bias=false"], "use_bias", False),
    (["--config.use_bias=0"], "use_bias", False),
    (["--config.use_bias"], "use_bias", True),
    (["--config.widths=16,32"], "widths", (16, 32)),
    (["--config.widths=(1, 2, 3)"], "widths", (1, 2, 3)),
    (["--config.widths=16"], "widths", (16,)),
    (["--config.widths=16", "--config.widths=32"], "widths", (16, 32)),
    (["--config.datasets=spirals"], "datasets", ("spirals",)),
    (["--config.datasets=spirals", "--config.datasets=moons"], "datasets", ("spirals", "moons")),
    (["--config.optimizer=adam"], "optimizer", "adam"),
    (["--config.model.width=5"], "model.width", 5),
    (["--config.model.activation", "tanh"], "model.activation", "tanh"),
])
def test_override_takes_effect_with_the_field_type(arguments, field, expected):
    config = parse_config(*arguments)
    value = common.flatten_config(config)[field]
    assert value == expected and type(value) is type(expected)
    untouched = common.flatten_config(make_experiment().get_config("default"))
    del untouched[field]
    assert {name: common.flatten_config(config)[name] for name in untouched} == untouched


def test_overrides_anywhere_on_the_line():
    args = common.parse_args(make_experiment(), [
        "--config.steps=7", "--size", "quick", "--config.model.width", "5", "--workdir", "w",
        "--config.optimizer", "adam"])
    assert (args.size, args.workdir) == ("quick", "w")
    assert (args.config.steps, args.config.model.width, args.config.optimizer) == (7, 5, "adam")
    assert args.config.learning_rate == 0.1


def test_two_parses_in_one_process_are_independent():
    first = parse_config("--config.steps=7", "--config.widths=1,2")
    second = parse_config("--config.steps=9")
    third = parse_config()
    assert (first.steps, first.widths) == (7, (1, 2))
    assert (second.steps, second.widths) == (9, (4, 8))
    assert (third.steps, third.widths) == (100, (4, 8))
    assert "config" not in flags.FLAGS  # absl's global flags are left alone.


@pytest.mark.parametrize("argument, field", [
    ("--config.stpes=3", "stpes"), ("--config.model.depth=3", "model.depth"),
    ("--config.steps.count=3", "steps.count"),
])
def test_unknown_field_names_the_field_and_lists_known(capsys, argument, field):
    with pytest.raises(SystemExit) as exit_info:
        parse_config(argument)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"unknown config field {field!r}" in err
    listed = err.split("known fields: ", 1)[1].strip().split(", ")
    assert sorted(listed) == sorted(common.flatten_config(make_experiment().get_config()))
    assert "model.width" in listed


@pytest.mark.parametrize("arguments, field", [
    (["--config.use_bias=maybe"], "use_bias"), (["--config.steps=x"], "steps"),
    (["--config.steps=1e3"], "steps"), (["--config.steps=2.5"], "steps"),
    (["--config.learning_rate=fast"], "learning_rate"), (["--config.model=3"], "model"),
    (["--config.widths=(1,"], "widths"), (["--config.steps"], "steps"),
])
def test_bad_value_names_the_field(capsys, arguments, field):
    with pytest.raises(SystemExit) as exit_info:
        parse_config(*arguments)
    assert exit_info.value.code == 2
    assert f"--config.{field}" in capsys.readouterr().err


def test_field_with_none_default_gets_a_clear_error(capsys):
    module = make_experiment()
    get_config = module.get_config

    def get_config_with_none(size="default"):
        config = get_config(size)
        config.checkpoint = None
        return config

    module.get_config = get_config_with_none
    assert common.parse_args(module, ["--config.steps=2"]).config.checkpoint is None
    with pytest.raises(SystemExit):
        common.parse_args(module, ["--config.checkpoint=x"])
    assert "--config.checkpoint: a field whose default is None" in capsys.readouterr().err


def test_arguments_that_are_not_overrides_are_rejected(capsys):
    with pytest.raises(SystemExit):
        parse_config("stray")
    assert "unrecognized arguments: stray" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse_config("--sise=quick")
    assert "sise" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # absl reads a bare bool flag as true, so "false" is left over.
        parse_config("--config.use_bias", "false")
    assert "--config.use_bias=false" in capsys.readouterr().err


def test_experiment_main_applies_overrides_and_writes_run_dir(tmp_path, capsys):
    module = make_experiment()
    workdir = tmp_path / "run"
    result = common.experiment_main(module, [
        "--size", "quick", "--workdir", str(workdir),
        "--config.steps=7", "--config.learning_rate", "0.5", "--config.use_bias=false",
        "--config.widths=16,32", "--config.model.width=3", "--config.optimizer", "adam",
        "--config.datasets=spirals",
    ])
    assert isinstance(result["run_dir"], io.RunDir) and result["run_dir"].root == str(workdir)
    config = result["config"]
    assert (config.steps, config.learning_rate, config.use_bias) == (7, 0.5, False)
    assert config.widths == (16, 32) and config.model.width == 3 and config.optimizer == "adam"
    assert config.datasets == ("spirals",)
    assert config.model.activation == "relu"  # Untouched fields keep the size's defaults.

    saved = io.load_json(workdir / "config.json")
    assert saved == {"steps": 7, "learning_rate": 0.5, "use_bias": False, "widths": [16, 32],
                     "optimizer": "adam", "datasets": ["spirals"],
                     "model": {"width": 3, "activation": "relu"}}
    assert [c.held for c in result["claims"]] == [True, False]

    report = (workdir / "report.md").read_text()
    assert report.startswith("# fake\n")
    assert "A fake experiment called fake." in report
    assert "| Paper" in report and "the loss reaches 10" in report and "| NO " in report
    assert "![loss](loss.png)" in report
    assert "steps = 7" in report  # The config section shows the overridden value.
    assert "| step | loss" in report  # The result table.
    assert (workdir / "loss.png").read_bytes() == FAKE_PNG

    claims = json.loads((workdir / "claims.json").read_text())
    assert claims[1] == {"paper": "Fake 2024", "claim": "the loss reaches 10",
                         "expected": ">= 10.000", "measured": "0.143", "held": False}
    out = capsys.readouterr().out
    assert "the loss reaches 10" in out and "1/2 claims held" in out and "wall time" in out


def test_default_workdir_is_runs_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = common.parse_args(make_experiment("named"), [])
    assert args.workdir == os.path.join("runs", "named") and args.size == "default"
    assert args.config.steps == 100


def test_help_lists_every_field_for_the_chosen_size(capsys):
    with pytest.raises(SystemExit) as exit_info:
        common.parse_args(make_experiment(), ["--size", "quick", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "A fake experiment called fake." in out
    for line in ["steps = 3", "learning_rate = 0.1", "use_bias = True", "widths = (4, 8)",
                 "optimizer = 'sgd'", "datasets = ('moons',)", "model.width = 2",
                 "model.activation = 'relu'"]:
        assert line in out, line


def test_bad_size_is_rejected(capsys):
    with pytest.raises(SystemExit) as exit_info:
        common.parse_args(make_experiment(), ["--size", "huge"])
    assert exit_info.value.code == 2
    assert "huge" in capsys.readouterr().err


def test_run_result_must_hold_tables_and_figures(tmp_path):
    module = make_experiment()
    module.run = lambda config, run_dir: {"figures": []}
    with pytest.raises(TypeError, match="tables"):
        common.run_experiment(module, module.get_config("quick"), str(tmp_path))


# ----------------------------------------------------------------------------- the tour


@pytest.fixture
def fake_registry(monkeypatch):
    modules = {"alpha": make_experiment("alpha"),
               "broken": make_experiment("broken", error=RuntimeError("boom in broken")),
               "gamma": make_experiment("gamma")}

    def get_experiment(name):
        if name not in modules:
            raise ValueError(f"unknown experiment {name!r}")
        return modules[name]

    monkeypatch.setattr(experiments, "EXPERIMENTS", tuple(modules))
    monkeypatch.setattr(experiments, "get_experiment", get_experiment)
    return modules


def test_tour_records_failure_and_continues(tmp_path, fake_registry, capsys):
    status = tour.main(["--quick", "--workdir", str(tmp_path)])
    assert status != 0
    report = (tmp_path / "report.md").read_text()
    assert report.startswith("# jaxdl tour\n")
    assert report.index("## alpha") < report.index("## broken") < report.index("## gamma")
    assert "FAILED" in report and "RuntimeError: boom in broken" in report
    assert "Traceback" in report
    assert "![loss](alpha/loss.png)" in report and "![loss](gamma/loss.png)" in report
    assert "### Claims" in report and "the loss reaches 10" in report
    summary = report[report.index("## Summary"):report.index("## alpha")]
    assert "Claims held" in summary and "| alpha " in summary and "1/2" in summary
    assert "FAILED" in summary
    for name in ("alpha", "gamma"):  # Each experiment also has its own run directory.
        assert (tmp_path / name / "report.md").exists()
        assert io.load_json(tmp_path / name / "config.json")["steps"] == 3  # --quick
    out = capsys.readouterr().out
    assert str(tmp_path / "report.md") in out and "Total wall time" in out


def test_tour_only_selects_and_succeeds(tmp_path, fake_registry):
    assert tour.main(["--quick", "--only", "gamma,alpha", "--workdir", str(tmp_path)]) == 0
    assert sorted(os.listdir(tmp_path)) == ["alpha", "gamma", "report.md"]
    report = (tmp_path / "report.md").read_text()
    assert report.index("## gamma") < report.index("## alpha")  # The order asked for.


def test_tour_only_unknown_name_lists_choices(tmp_path, fake_registry, capsys):
    with pytest.raises(SystemExit) as exit_info:
        tour.main(["--only", "alpha,nope", "--workdir", str(tmp_path)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "'nope'" in err and "alpha, broken, gamma" in err
    assert not os.listdir(tmp_path)


def test_tour_list(fake_registry, capsys):
    assert tour.main(["--list"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "alpha: A fake experiment called alpha.",
        "broken: A fake experiment called broken.",
        "gamma: A fake experiment called gamma.",
    ]


def test_get_experiment_rejects_unknown_names():
    for name in ("no_such_experiment", "common", "cli", "reporting", "__main__", "../x"):
        with pytest.raises(ValueError, match="choices: parametrization"):
            experiments.get_experiment(name)
