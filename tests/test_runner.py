"""Tests of the experiment framework (experiments.framework: config, cli, runner, report, lock,
tour) with fake experiment modules, so that only the runner is exercised."""
from __future__ import annotations

import json
import os
import types

import ml_collections
import numpy as np
import pytest
from absl import flags

import experiments
from experiments import framework as fw
from experiments.framework import lock, runner, tour
from jaxdl.core import io

FAKE_PNG = b"\x89PNG\r\n\x1a\n fake"


def make_experiment(name: str = "fake", error: BaseException | None = None, calls: list | None = None,
                    interrupt_after: str | None = None) -> types.ModuleType:
    """A module following the experiment protocol. `run` raises `error` if given, records its
    name in `calls`, and raises KeyboardInterrupt after its first phase if `interrupt_after`
    names this experiment."""
    module = types.ModuleType(f"fake_experiments.{name}")
    module.NAME = name
    module.DESCRIPTION = f"A fake experiment called {name}."
    module.get_config = lambda: ml_collections.ConfigDict(dict(
        seed=0, seeds=4, steps=100, learning_rate=0.1, use_bias=True, widths=(4, 8), optimizer="sgd",
        datasets=("moons",), model=dict(width=2, activation="relu"), tasks=dict(a=dict(epochs=3), b=dict(epochs=4))))
    module.SIZES = {"quick": {"steps": 3, "model.width": 1}, "full": {"steps": 1000}}
    module.FIELDS = {"steps": fw.positive_int, "learning_rate": fw.positive, "tasks.*.epochs": fw.positive_int,
                     "optimizer": fw.one_of("sgd", "adam"),
                     "widths": fw.expect(lambda v, c: len(v) <= c.steps, "at most config.steps widths",
                                         uses_config=True)}

    def loss_phase(config, ctx):
        steps = np.arange(config.steps)
        losses = 1.0 / (1.0 + steps)
        path = ctx.run_dir.figure_path("loss")
        io.atomic_write_bytes(path, FAKE_PNG)  # stand-in bytes: the runner only links figures
        table = fw.format_table([{"step": int(s), "loss": float(l)} for s, l in zip(steps[:3], losses[:3])])
        return fw.Phase(tables={"losses": table}, figures={"loss": path}, arrays={"losses": losses},
                        numbers={"final_loss": float(losses[-1])}, carry=losses)

    def seeds_phase(config, ctx, losses):
        return fw.Phase(numbers={"per_seed": (losses[-1] + 0.01 * np.arange(config.seeds)).tolist()})

    def run(config, ctx):
        if calls is not None:
            calls.append(name)
        if error is not None:
            raise error
        first = ctx.phase("losses", loss_phase, config, ctx)
        if interrupt_after == name:
            raise KeyboardInterrupt
        ctx.phase("seeds", seeds_phase, config, ctx, first.carry)

    def claims(config, numbers):
        return [fw.Claim.mean("falls", "Fake 2024", "the loss falls below 1", numbers["per_seed"], below=1.0),
                fw.Claim.mean("reaches_10", "Fake 2024", "the loss reaches 10", numbers["per_seed"], above=10.0),
                fw.Check.at_most("finite", "algebra", "the loss is at most 1", numbers["final_loss"], 1.0)]

    module.run, module.claims = run, claims
    module.main = lambda argv=None: fw.experiment_main(module, argv)
    return module


# ----------------------------------------------------------------------------- config


def test_sizes_are_data_applied_over_the_default():
    module = make_experiment()
    assert fw.config_for(module, "default").steps == 100
    quick = fw.config_for(module, "quick")
    assert (quick.steps, quick.model.width, quick.model.activation) == (3, 1, "relu")
    assert fw.config_for(module, "full").steps == 1000
    with pytest.raises(ValueError, match="'huge'.*quick, default, full"):
        fw.config_for(module, "huge")
    module.SIZES = {"quick": {"model.depth": 3}}
    with pytest.raises(ValueError, match=r"fake.SIZES\['quick'\] sets 'model.depth'"):
        fw.config_for(module, "quick")


def test_a_size_can_replace_a_group():
    module = make_experiment()
    module.SIZES = {"quick": {"tasks": {"c": {"epochs": 1}}}}
    assert list(fw.config_for(module, "quick").tasks) == ["c"]


@pytest.mark.parametrize("field, value, message", [
    ("steps", -3, r"^config\.steps must be a positive integer, got -3$"),
    ("steps", 2.5, "config.steps must be a positive integer"),
    ("learning_rate", 0.0, "config.learning_rate must be a positive number, got 0.0"),
    ("tasks.b.epochs", 0, "config.tasks.b.epochs must be a positive integer, got 0"),
    ("optimizer", "lbfgs", r"config.optimizer must be one of \['sgd', 'adam'\], got 'lbfgs'"),
    ("widths", (1, 2, 3, 4), "config.widths must be at most config.steps widths"),
])
def test_declared_fields_are_validated_with_the_field_named(field, value, message):
    module = make_experiment()
    config = fw.config_for(module, "quick")
    fw.config.set_field(config, field, value)
    with pytest.raises(ValueError, match=message):
        fw.validate(module, config)


def test_a_declared_field_missing_from_the_config_is_an_error():
    module = make_experiment()
    module.FIELDS = {"stesp": fw.positive_int}
    with pytest.raises(ValueError, match="FIELDS checks 'stesp'"):
        fw.validate(module, fw.config_for(module))


# ----------------------------------------------------------------------------- overrides


def parse_config(*arguments: str) -> ml_collections.ConfigDict:
    return fw.parse_args(make_experiment(), list(arguments)).config


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
    value = fw.flatten_config(config)[field]
    assert value == expected and type(value) is type(expected)
    untouched = fw.flatten_config(fw.config_for(make_experiment()))
    del untouched[field]
    assert {name: fw.flatten_config(config)[name] for name in untouched} == untouched


def test_overrides_anywhere_on_the_line():
    args = fw.parse_args(make_experiment(), ["--config.steps=7", "--size", "quick", "--config.model.width", "5",
                                             "--workdir", "w", "--config.optimizer", "adam"])
    assert (args.size, args.workdir) == ("quick", "w")
    assert (args.config.steps, args.config.model.width, args.config.optimizer) == (7, 5, "adam")


def test_two_parses_in_one_process_are_independent():
    first = parse_config("--config.steps=7", "--config.widths=1,2")
    second = parse_config("--config.steps=9")
    assert (first.steps, first.widths) == (7, (1, 2))
    assert (second.steps, second.widths) == (9, (4, 8))
    assert parse_config().steps == 100
    assert "config" not in flags.FLAGS  # absl's global flags are left alone.


@pytest.mark.parametrize("argument, field", [
    ("--config.stpes=3", "stpes"), ("--config.model.depth=3", "model.depth"), ("--config.steps.count=3", "steps.count"),
])
def test_unknown_field_names_the_field_and_lists_known(capsys, argument, field):
    with pytest.raises(SystemExit) as exit_info:
        parse_config(argument)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"unknown config field {field!r}" in err
    listed = err.split("known fields: ", 1)[1].strip().split(", ")
    assert sorted(listed) == sorted(fw.flatten_config(fw.config_for(make_experiment())))


@pytest.mark.parametrize("arguments, field", [
    (["--config.use_bias=maybe"], "use_bias"), (["--config.steps=x"], "steps"), (["--config.steps=1e3"], "steps"),
    (["--config.learning_rate=fast"], "learning_rate"), (["--config.model=3"], "model"),
    (["--config.widths=(1,"], "widths"), (["--config.steps"], "steps"),
])
def test_bad_value_names_the_field(capsys, arguments, field):
    with pytest.raises(SystemExit) as exit_info:
        parse_config(*arguments)
    assert exit_info.value.code == 2
    assert f"--config.{field}" in capsys.readouterr().err


def test_a_value_a_declared_check_rejects_is_a_one_line_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        make_experiment().main(["--config.steps=-3"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1].endswith("error: config.steps must be a positive integer, got -3")


def test_arguments_that_are_not_overrides_are_rejected(capsys):
    with pytest.raises(SystemExit):
        parse_config("stray")
    assert "unrecognized arguments: stray" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # absl reads a bare bool flag as true, so "false" is left over.
        parse_config("--config.use_bias", "false")
    assert "--config.use_bias=false" in capsys.readouterr().err


def test_help_lists_every_field_for_the_chosen_size(capsys):
    with pytest.raises(SystemExit) as exit_info:
        fw.parse_args(make_experiment(), ["--size", "quick", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for line in ["steps = 3", "learning_rate = 0.1", "model.width = 1", "tasks.a.epochs = 3"]:
        assert line in out, line


def test_default_workdir_is_runs_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = fw.parse_args(make_experiment("named"), [])
    assert args.workdir == os.path.join("runs", "named") and args.size == "default"


# ----------------------------------------------------------------------------- one run


def test_experiment_main_writes_the_run_directory(tmp_path, capsys):
    workdir = tmp_path / "run"
    outcome = make_experiment().main(["--size", "quick", "--workdir", str(workdir), "--config.learning_rate", "0.5"])
    assert io.load_json(workdir / "config.json")["learning_rate"] == 0.5
    assert outcome["numbers"]["final_loss"] == pytest.approx(1 / 3)
    assert io.load_json(workdir / "numbers.json")["per_seed"] == pytest.approx(outcome["numbers"]["per_seed"])
    np.testing.assert_allclose(io.load_npz(workdir / "results.npz")["losses"], [1, 1 / 2, 1 / 3])
    assert [c["verdict"] for c in outcome["claims"]] == ["held", "not held"]
    saved = io.load_json(workdir / "claims.json")
    assert [c["key"] for c in saved["claims"]] == ["falls", "reaches_10"] and saved["checks"][0]["passed"]
    assert saved["summary"]["held"] == 1 and saved["summary"]["not held"] == 1
    assert set(outcome["phase_seconds"]) == {"losses", "seeds"}
    report = (workdir / "report.md").read_text()
    assert report.startswith("# fake\n") and "A fake experiment called fake." in report
    for text in ("## Claims", "| Paper", "NOT HELD", "## Checks", "the loss is at most 1", "![loss](loss.png)",
                 "steps = 3", "| step | loss", "1 held, 1 not held, 0 inconclusive of 2 claims; 1/1 checks passed"):
        assert text in report, text
    assert io.load_json(workdir / runner.OUTCOME)["config_hash"] == fw.config.config_hash(outcome_config(workdir))
    out = capsys.readouterr().out
    assert "the loss reaches 10" in out and "1 held, 1 not held" in out and "wall time" in out


def outcome_config(workdir) -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(io.load_json(workdir / "config.json"))


def test_phases_must_return_a_phase_and_not_clash(tmp_path):
    module = make_experiment()
    module.run = lambda config, ctx: ctx.phase("bad", lambda: {"tables": {}})
    with pytest.raises(TypeError, match="must return a Phase"):
        fw.run_experiment(module, fw.config_for(module, "quick"), str(tmp_path / "a"))

    def clashing(config, ctx):
        ctx.phase("one", lambda: fw.Phase(numbers={"x": 1}))
        ctx.phase("two", lambda: fw.Phase(numbers={"x": 2}))

    module.run = clashing
    with pytest.raises(ValueError, match=r"phase 'two' returns numbers \['x'\]"):
        fw.run_experiment(module, fw.config_for(module, "quick"), str(tmp_path / "b"))


def test_an_interrupted_run_keeps_its_finished_phases_and_exits_130(tmp_path, capsys):
    workdir = tmp_path / "run"
    with pytest.raises(SystemExit) as exit_info:
        make_experiment(interrupt_after="fake").main(["--size", "quick", "--workdir", str(workdir)])
    assert exit_info.value.code == 130
    err = capsys.readouterr().err
    assert "interrupted" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "final_loss" in io.load_json(workdir / "numbers.json") and (workdir / "results.npz").exists()
    assert not (workdir / runner.OUTCOME).exists()


def test_load_complete_needs_the_same_config_and_code(tmp_path, monkeypatch):
    module = make_experiment()
    config = fw.config_for(module, "quick")
    fw.run_experiment(module, config, str(tmp_path))
    assert runner.load_complete(str(tmp_path), config)["name"] == "fake"
    other = fw.config_for(module, "quick")
    other.steps = 4
    assert runner.load_complete(str(tmp_path), other) is None
    monkeypatch.setattr(runner, "code_version", lambda: "another")
    assert runner.load_complete(str(tmp_path), config) is None


def test_code_version_follows_the_sources(tmp_path):
    assert runner.code_version() == runner.code_version() and len(runner.code_version()) == 16
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "a.py").write_text("x = 1\n")
    first = runner._source_files(str(tmp_path / "pkg"))
    assert first == [str(tmp_path / "pkg" / "a.py")]


# ----------------------------------------------------------------------------- the tour


@pytest.fixture
def registry(monkeypatch):
    calls: list[str] = []
    modules = {"alpha": make_experiment("alpha", calls=calls),
               "broken": make_experiment("broken", error=RuntimeError("boom in broken"), calls=calls),
               "gamma": make_experiment("gamma", calls=calls)}

    def get_experiment(name):
        if name not in modules:
            raise ValueError(f"unknown experiment {name!r}")
        return modules[name]

    monkeypatch.setattr(experiments, "EXPERIMENTS", tuple(modules))
    monkeypatch.setattr(experiments, "get_experiment", get_experiment)
    monkeypatch.setattr(lock, "LOCK_PATH", "/nonexistent/claims.lock.json")
    return modules, calls


def test_tour_records_failure_and_continues(tmp_path, registry, capsys):
    assert tour.main(["--quick", "--workdir", str(tmp_path)]) == 1
    report = (tmp_path / "report.md").read_text()
    assert report.startswith("# jaxdl tour\n")
    assert report.index("## alpha") < report.index("## broken") < report.index("## gamma")
    assert "RuntimeError: boom in broken" in report and "Traceback" in report
    assert "![loss](alpha/loss.png)" in report and "![loss](gamma/loss.png)" in report
    summary = report[report.index("## Summary"):report.index("## alpha")]
    assert "| alpha " in summary and "FAILED" in summary and "2 held, 2 not held, 0 inconclusive of 4" in summary
    for name in ("alpha", "gamma"):
        assert io.load_json(tmp_path / name / "config.json")["steps"] == 3  # --quick
    assert str(tmp_path / "report.md") in capsys.readouterr().out


def test_a_rerun_skips_complete_runs_unless_asked(tmp_path, registry, capsys):
    modules, calls = registry
    tour.main(["--quick", "--only", "alpha,gamma", "--workdir", str(tmp_path)])
    assert calls == ["alpha", "gamma"]
    assert tour.main(["--quick", "--only", "alpha,gamma", "--workdir", str(tmp_path)]) == 0
    assert calls == ["alpha", "gamma"]  # nothing ran again
    out = capsys.readouterr().out
    assert "alpha: reused the complete run" in out and "| reused" in out
    report = (tmp_path / "report.md").read_text()
    assert "![loss](alpha/loss.png)" in report and "the loss reaches 10" in report
    tour.main(["--quick", "--only", "gamma", "--workdir", str(tmp_path), "--rerun"])
    assert calls == ["alpha", "gamma", "gamma"]
    tour.main(["--size", "default", "--only", "gamma", "--workdir", str(tmp_path)])  # another config: runs
    assert calls[-1] == "gamma" and len(calls) == 4


def test_ctrl_c_says_what_finished_in_one_line_and_a_rerun_resumes(tmp_path, registry, monkeypatch, capsys):
    modules, calls = registry
    modules["gamma"] = make_experiment("gamma", calls=calls, interrupt_after="gamma")
    assert tour.main(["--quick", "--only", "alpha,gamma", "--workdir", str(tmp_path)]) == 130
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "interrupted during gamma" in err and "finished: alpha" in err
    assert "Interrupted" in (tmp_path / "report.md").read_text()
    modules["gamma"] = make_experiment("gamma", calls=calls)
    assert tour.main(["--quick", "--only", "alpha,gamma", "--workdir", str(tmp_path)]) == 0
    assert calls == ["alpha", "gamma", "gamma"]  # alpha was not run again


def test_tour_only_unknown_name_lists_choices(tmp_path, registry, capsys):
    with pytest.raises(SystemExit) as exit_info:
        tour.main(["--only", "alpha,nope", "--workdir", str(tmp_path)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "'nope'" in err and "alpha, broken, gamma" in err


def test_tour_list(registry, capsys):
    assert tour.main(["--list"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "alpha: A fake experiment called alpha.", "broken: A fake experiment called broken.",
        "gamma: A fake experiment called gamma."]


def test_tour_seed_sets_every_config_seed(tmp_path, registry):
    tour.main(["--quick", "--only", "alpha", "--seed", "7", "--workdir", str(tmp_path)])
    assert io.load_json(tmp_path / "alpha" / "config.json")["seed"] == 7


def test_get_experiment_rejects_unknown_names():
    for name in ("no_such_experiment", "common", "framework", "__main__", "../x"):
        with pytest.raises(ValueError, match="choices: parametrization"):
            experiments.get_experiment(name)


# ----------------------------------------------------------------------------- the lock


def test_lock_records_and_compares(tmp_path, registry, monkeypatch):
    path = tmp_path / "claims.lock.json"
    monkeypatch.setattr(lock, "LOCK_PATH", str(path))
    assert tour.main(["--only", "alpha", "--workdir", str(tmp_path / "tour"), "--update-lock"]) == 0
    recorded = json.loads(path.read_text())
    entry = recorded["experiments"]["alpha"]
    assert entry["claims"]["falls"]["verdict"] == "held" and entry["checks"] == ["finite"]
    outcome = io.load_json(tmp_path / "tour" / "alpha" / runner.OUTCOME)
    assert lock.compare(recorded, outcome) == []

    flipped = json.loads(json.dumps(outcome))
    flipped["claims"][0]["verdict"] = "inconclusive"
    flipped["claims"][1]["statistic"] += 1.0
    flipped["checks"][0]["passed"] = False
    problems = lock.compare(recorded, flipped)
    assert any("alpha/falls: verdict 'held' -> 'inconclusive'" in p for p in problems)
    assert any("alpha/reaches_10: statistic" in p and "outside the locked band" in p for p in problems)
    assert any("alpha/finite: check failed" in p for p in problems)
    renamed = json.loads(json.dumps(outcome))
    renamed["claims"][0]["key"] = "falls_fast"
    assert {p.split(":")[0] for p in lock.compare(recorded, renamed)} == {"alpha/falls", "alpha/falls_fast"}
    assert lock.compare(recorded, {**outcome, "name": "gamma"}) == [
        "gamma: not in the lock (python -m experiments --only gamma --update-lock)"]


def test_a_marginal_claim_may_move_to_the_adjacent_verdict_only(tmp_path, registry, monkeypatch):
    path = tmp_path / "claims.lock.json"
    monkeypatch.setattr(lock, "LOCK_PATH", str(path))
    tour.main(["--only", "alpha", "--workdir", str(tmp_path / "tour"), "--update-lock"])
    outcome = io.load_json(tmp_path / "tour" / "alpha" / runner.OUTCOME)
    recorded = json.loads(path.read_text())
    record = recorded["experiments"]["alpha"]["claims"]["falls"]
    assert record["verdict"] == "held" and not record["marginal"]  # margin +151: firm
    record["marginal"] = True  # as if it had been locked at a margin near +2
    moved = json.loads(json.dumps(outcome))
    moved["claims"][0]["verdict"] = "inconclusive"
    assert lock.compare(recorded, moved) == []
    moved["claims"][0]["verdict"] = "not held"  # never two steps
    assert any("verdict 'held' -> 'not held'" in p for p in lock.compare(recorded, moved))


@pytest.mark.parametrize("margin, critical, n, expected", [
    (2.1, 2.0, 5, True), (4.9, 2.0, 5, True), (5.1, 2.0, 5, False), (-4.0, 2.0, 5, True), (0.0, 2.0, 5, True),
    (-5.5, 2.13, 5, False), (1.5, 1.0, 1, True), (2.5, 1.0, 1, False), (float("nan"), 2.0, 5, True),
    (float("inf"), 2.0, 5, False)])
def test_marginal_means_within_three_standard_errors_of_the_decision_line(margin, critical, n, expected):
    assert lock.marginal({"margin": margin, "critical": critical, "n": n}) is expected


def test_lock_band_allows_for_a_fresh_draw_with_the_standard_error_at_its_upper_bound():
    from scipy import stats

    claim = {"statistic": 2.0, "standard_error": 0.1, "n": 5}
    upper = 0.1 * np.sqrt(4 / stats.chi2.ppf(0.05, 4))  # 2.37 x the estimate with four degrees of freedom
    assert upper == pytest.approx(0.237, abs=1e-3)
    assert lock.band(claim) == pytest.approx([2.0 - 4 * np.sqrt(2) * upper, 2.0 + 4 * np.sqrt(2) * upper])
    # Every seed alike (a count): one seed's worth, |statistic| / n.
    assert lock.band({**claim, "standard_error": 0.0}) == pytest.approx([1.6, 2.4])
    assert lock.band({**claim, "n": 1}) == pytest.approx([1.9, 2.1])  # a deterministic value: one tolerance
    assert lock.band({**claim, "standard_error": float("nan")}) == pytest.approx([1.98, 2.02])
    # Two independent runs whose means differ by 8 estimated standard errors, as happens when five
    # seeds underestimate the spread, still fall inside.
    low, high = lock.band(claim)
    assert low < 2.0 - 0.8 and high > 2.0 + 0.8


def test_update_lock_refuses_other_sizes(tmp_path, registry, capsys):
    with pytest.raises(SystemExit):
        tour.main(["--quick", "--update-lock", "--workdir", str(tmp_path)])
    assert "--update-lock records the default size" in capsys.readouterr().err
