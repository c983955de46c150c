"""Tests of experiments.framework.devices and its wiring in the runner: the resolver's rules against
hand-computed sizes, bad declarations and values, every registered experiment's DEVICE_FIELDS
against its three configs, the runner and the tour with a fake experiment on pretend devices,
and one real experiment on 8 forced CPU devices in a fresh interpreter."""
from __future__ import annotations

import json
import textwrap
import types

import ml_collections
import pytest

import experiments
from experiments import framework as fw
from experiments.framework import devices as device_defaults
from experiments.framework import lock, tour
from experiments.framework.devices import resolve_device_defaults
from helpers import json_result, run_on_devices
from jaxdl.core import io

FIELDS = {"seeds": "seeds", "mlp.seeds": "seeds", "chunk_size": "examples_per_chunk",
          "points_per_chunk": "points_per_chunk"}


def make_config(seeds=5, mlp_seeds=(0, 1), chunk_size=1000, points_per_chunk=8) -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.seeds = seeds
    config.batch_size = 64
    config.chunk_size = chunk_size
    config.points_per_chunk = points_per_chunk
    config.mlp = ml_collections.ConfigDict(dict(seeds=mlp_seeds, width=16))
    return config


def resolve(config, num_devices, platform="tpu", fields=FIELDS, overridden=()):
    return resolve_device_defaults(config, fields, num_devices=num_devices, platform=platform, overridden=overridden)


# ----------------------------------------------------------------------------- the rules


@pytest.mark.parametrize("seeds, num_devices, expected", [
    (5, 8, 8), (8, 8, 8), (9, 8, 16), (1, 8, 8), (3, 4, 4), (10, 4, 12), (5, 1, 5), (7, 3, 9)])
def test_seed_counts_round_up_to_a_multiple_of_the_device_count(seeds, num_devices, expected):
    resolved, _ = resolve(make_config(seeds=seeds), num_devices, fields={"seeds": "seeds"})
    assert resolved.seeds == expected and type(resolved.seeds) is int


@pytest.mark.parametrize("seeds, num_devices, expected", [
    ((0, 1), 8, (0, 1, 2, 3, 4, 5, 6, 7)), ((3, 7), 4, (3, 7, 8, 9)), ((0, 1, 2, 3), 4, (0, 1, 2, 3)),
    ((5, 2, 9), 2, (5, 2, 9, 10)), ((0,), 1, (0,))])
def test_seed_tuples_are_extended_with_consecutive_seeds_after_the_largest(seeds, num_devices, expected):
    resolved, _ = resolve(make_config(mlp_seeds=seeds), num_devices, fields={"mlp.seeds": "seeds"})
    assert resolved.mlp.seeds == expected


@pytest.mark.parametrize("chunk_size, num_devices, expected", [(1000, 8, 8000), (1000, 1, 1000), (250, 3, 750),
                                                               (None, 8, None)])
def test_examples_per_chunk_are_multiplied_by_the_device_count(chunk_size, num_devices, expected):
    for platform in ("tpu", "cpu"):
        resolved, _ = resolve(make_config(chunk_size=chunk_size), num_devices, platform,
                              fields={"chunk_size": "examples_per_chunk"})
        assert resolved.chunk_size == expected


@pytest.mark.parametrize("points, num_devices, platform, expected", [
    (8, 8, "tpu", 64), (8, 8, "cpu", 64), (8, 1, "gpu", 8), (8, 1, "cpu", 8), (1000, 8, "tpu", 8000),
    (600, 8, "GPU", 4800), (100, 2, "gpu", 200), ("auto", 8, "tpu", "auto"), (None, 8, "tpu", None)])
def test_points_per_chunk_keep_their_size_per_device(points, num_devices, platform, expected):
    resolved, _ = resolve(make_config(points_per_chunk=points), num_devices, platform,
                          fields={"points_per_chunk": "points_per_chunk"})
    assert resolved.points_per_chunk == expected


def test_every_rule_at_once_with_the_changes_in_words_and_the_input_untouched():
    config = make_config()
    before = config.to_dict()
    resolved, changes = resolve(config, 8, "tpu")
    assert config.to_dict() == before  # pure: a copy comes back
    assert resolved.to_dict() == {**before, "seeds": 8, "chunk_size": 8000, "points_per_chunk": 64,
                                  "mlp": {"seeds": (0, 1, 2, 3, 4, 5, 6, 7), "width": 16}}
    assert changes == ["seeds: 5 -> 8 (8 tpu devices)", "mlp.seeds: (0, 1) -> (0, 1, 2, 3, 4, 5, 6, 7) (8 tpu devices)",
                       "chunk_size: 1000 -> 8000 (8 tpu devices)", "points_per_chunk: 8 -> 64 (8 tpu devices)"]
    assert resolved.batch_size == 64  # training batch sizes are part of the science


def test_overridden_fields_and_fields_below_an_overridden_group_keep_their_values():
    resolved, changes = resolve(make_config(), 8, "tpu", overridden=("seeds", "mlp", "learning_rate"))
    assert (resolved.seeds, resolved.mlp.seeds) == (5, (0, 1))
    assert (resolved.chunk_size, resolved.points_per_chunk) == (8000, 64)
    assert [change.split(":")[0] for change in changes] == ["chunk_size", "points_per_chunk"]
    resolved, changes = resolve(make_config(), 8, "tpu", overridden=("mlp.seed",))  # a prefix, not a parent
    assert resolved.mlp.seeds == (0, 1, 2, 3, 4, 5, 6, 7)


def test_one_cpu_device_changes_nothing():
    config = make_config(seeds=3, mlp_seeds=(4, 9, 2))
    resolved, changes = resolve(config, 1, "cpu")
    assert changes == [] and resolved.to_dict() == config.to_dict()


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("fields, name", [
    ({"seeds": "seed_count"}, "seeds"), ({"mlp.seedz": "seeds"}, "mlp.seedz"), ({"nope": "seeds"}, "nope"),
    ({"mlp": "seeds"}, "mlp"), ({"seeds.count": "seeds"}, "seeds.count")])
def test_a_bad_declaration_names_the_field(fields, name):
    with pytest.raises(ValueError, match=repr(name).replace(".", r"\.")):
        resolve(make_config(), 8, fields=fields)
    with pytest.raises(ValueError, match=repr(name).replace(".", r"\.")):  # also when not device-aware
        device_defaults.for_run(types.SimpleNamespace(DEVICE_FIELDS=fields), make_config(), device_aware=False)


@pytest.mark.parametrize("config, field", [
    (make_config(seeds=0), "config.seeds"), (make_config(seeds=2.5), "config.seeds"),
    (make_config(seeds=True), "config.seeds"), (make_config(mlp_seeds=()), "config.mlp.seeds"),
    (make_config(mlp_seeds=(0, -1)), "config.mlp.seeds"), (make_config(chunk_size="big"), "config.chunk_size"),
    (make_config(chunk_size=0), "config.chunk_size"),
    (make_config(points_per_chunk="many"), "config.points_per_chunk")])
def test_a_value_the_kind_cannot_take_names_the_field(config, field):
    with pytest.raises(ValueError, match=field.replace(".", r"\.")):
        resolve(config, 8)


def test_bad_device_count_or_platform_names_the_argument():
    with pytest.raises(ValueError, match="num_devices"):
        resolve(make_config(), 0)
    with pytest.raises(ValueError, match="platform"):
        resolve(make_config(), 8, platform="")


# ----------------------------------------------------------------------------- the experiments


@pytest.mark.parametrize("name", experiments.EXPERIMENTS)
def test_every_experiments_device_fields_exist_and_resolve_in_every_size(name):
    module = experiments.get_experiment(name)
    fields = getattr(module, "DEVICE_FIELDS", {})
    for size in fw.SIZES:
        config = fw.config_for(module, size)
        assert "device_aware" not in config  # a runner field: the experiment must not define it
        resolved, _ = resolve_device_defaults(config, fields, num_devices=8, platform="tpu")
        for field, kind in fields.items():
            value = fw.flatten_config(resolved)[field]
            if kind == "seeds":
                assert (len(value) if isinstance(value, tuple) else value) % 8 == 0, (size, field, value)


def test_the_experiments_that_train_seeds_side_by_side_declare_them():
    declared = {name: experiments.get_experiment(name).DEVICE_FIELDS for name in experiments.EXPERIMENTS
                if hasattr(experiments.get_experiment(name), "DEVICE_FIELDS")}
    assert declared["parametrization"] == {"seeds": "seeds"}
    assert declared["sharp_flat"] == {"seeds": "seeds", "chunk_size": "examples_per_chunk"}
    assert declared["loss_landscape"] == {"points_per_chunk": "points_per_chunk"}


# ----------------------------------------------------------------------------- the runner and the tour


def make_experiment(name: str = "fake") -> types.ModuleType:
    module = types.ModuleType(f"fake_experiments.{name}")
    module.NAME, module.DESCRIPTION = name, f"A fake experiment called {name}."
    module.DEVICE_FIELDS = {"seeds": "seeds", "chunk_size": "examples_per_chunk"}

    module.get_config = lambda: ml_collections.ConfigDict(dict(seeds=3, chunk_size=100, batch_size=32))
    module.SIZES = {"full": {"seeds": 10}}

    def run(config, ctx):
        module.seen = config.to_dict()
        ctx.phase("seeds", lambda: fw.Phase(tables={"seeds": f"{config.seeds} seeds"}))

    module.run, module.claims = run, lambda config, numbers: []
    return module


@pytest.fixture
def eight_tpus(monkeypatch):
    """Pretend devices for the resolver; counts how often the runner looks at them."""
    looked = []

    def device_count():
        looked.append(True)
        return 8

    monkeypatch.setattr(device_defaults, "jax", types.SimpleNamespace(device_count=device_count,
                                                                      default_backend=lambda: "tpu"))
    return looked


def test_a_full_run_is_device_aware_and_records_the_resolved_config(tmp_path, capsys, eight_tpus):
    module = make_experiment()
    result = fw.experiment_main(module, ["--size", "full", "--workdir", str(tmp_path)])
    assert module.seen == {"seeds": 16, "chunk_size": 800, "batch_size": 32}
    assert io.load_json(tmp_path / "config.json") == module.seen
    line = "device-aware defaults: seeds: 10 -> 16 (8 tpu devices); chunk_size: 100 -> 800 (8 tpu devices)"
    assert line in capsys.readouterr().out
    assert f"## Devices\n\n{line}" in (tmp_path / "report.md").read_text()
    assert result["devices"] == line


@pytest.mark.parametrize("arguments, seen, looked", [
    (["--size", "quick"], {"seeds": 3, "chunk_size": 100, "batch_size": 32}, False),
    (["--size", "default"], {"seeds": 3, "chunk_size": 100, "batch_size": 32}, False),
    (["--size", "full", "--config.device_aware=false"], {"seeds": 10, "chunk_size": 100, "batch_size": 32}, False),
    (["--size", "quick", "--config.device_aware=true"], {"seeds": 8, "chunk_size": 800, "batch_size": 32}, True),
    (["--config.device_aware", "--config.seeds=5"], {"seeds": 5, "chunk_size": 800, "batch_size": 32}, True),
    (["--size", "full", "--config.chunk_size", "7"], {"seeds": 16, "chunk_size": 7, "batch_size": 32}, True)])
def test_device_aware_follows_the_size_and_the_command_line(tmp_path, eight_tpus, arguments, seen, looked):
    module = make_experiment()
    fw.experiment_main(module, [*arguments, "--workdir", str(tmp_path)])
    assert module.seen == seen and io.load_json(tmp_path / "config.json") == seen
    assert bool(eight_tpus) is looked  # the devices are not looked at by a run that is not device-aware
    assert ("## Devices" in (tmp_path / "report.md").read_text()) is looked


def test_help_lists_device_aware_with_its_default_for_the_size(capsys):
    for size, default in (("quick", False), ("full", True)):
        with pytest.raises(SystemExit):
            fw.parse_args(make_experiment(), ["--size", size, "--help"])
        out = capsys.readouterr().out
        assert f"device_aware = {default}" in out and "seeds = " in out


def test_device_aware_takes_its_value_after_an_equals_sign(capsys):
    with pytest.raises(SystemExit):
        fw.parse_args(make_experiment(), ["--config.device_aware", "false"])
    assert "--config.device_aware=false" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        fw.parse_args(make_experiment(), ["--config.device_aware=maybe"])
    assert "--config.device_aware" in capsys.readouterr().err


def test_the_full_tour_is_device_aware_and_reports_what_ran(tmp_path, monkeypatch, eight_tpus):
    module = make_experiment("alpha")
    monkeypatch.setattr(lock, "LOCK_PATH", str(tmp_path / "no.lock.json"))
    monkeypatch.setattr(experiments, "EXPERIMENTS", ("alpha",))
    monkeypatch.setattr(experiments, "get_experiment", lambda name: module)
    assert tour.main(["--size", "full", "--workdir", str(tmp_path)]) == 0
    report = (tmp_path / "report.md").read_text()
    assert "seeds = 16" in report and "### Devices" in report and "seeds: 10 -> 16" in report
    assert tour.main(["--quick", "--workdir", str(tmp_path)]) == 0
    assert module.seen["seeds"] == 3 and len(eight_tpus) == 1


# ----------------------------------------------------------------------------- 8 forced CPU devices

_SCRIPT = textwrap.dedent("""
    import json, sys
    from experiments import framework as fw, parametrization
    from experiments.framework import devices
    # A real experiment, cut short by overrides (which also stay as given).
    result = parametrization.main(["--size", "quick", "--config.device_aware=true", "--config.toy_epochs=1",
                                   "--config.digits_epochs=1", "--config.figure_resolution=8", "--workdir", sys.argv[1]])
    # The configs the runner would hand to run, without running.
    def resolved(*argv):
        args = fw.parse_args(parametrization, list(argv))
        sized = devices.for_run(parametrization, args.config, device_aware=args.device_aware,
                                overridden=args.overridden)
        return sized.config.to_dict(), list(sized.changes)
    print("RESULT " + json.dumps({
        "devices": result["devices"], "claims": len(result["claims"]),
        "quick": resolved("--size", "quick"), "full": resolved("--size", "full"),
        "full_seeds_given": resolved("--size", "full", "--config.seeds=10"),
        "reference": {size: fw.config_for(parametrization, size).to_dict() for size in ("quick", "full")}}))
""")


def test_an_experiment_on_eight_cpu_devices(tmp_path):
    workdir = tmp_path / "run"
    out = json_result(run_on_devices(_SCRIPT.replace("sys.argv[1]", repr(str(workdir))), num_devices=8, timeout=300))
    saved = json.loads((workdir / "config.json").read_text())
    quick = out["reference"]["quick"]
    assert quick["seeds"] == 2 and saved["seeds"] == 8  # 2 seeds rounded up to the 8 devices
    assert out["devices"] == "device-aware defaults: seeds: 2 -> 8 (8 cpu devices)"
    assert (saved["toy_epochs"], saved["digits_epochs"], saved["toy_batch_size"]) == (1, 1, quick["toy_batch_size"])
    assert "## Devices" in (workdir / "report.md").read_text() and out["claims"] > 0
    # Quick (and default) runs are not device-aware: the same config on 8 devices as on one.
    assert out["quick"] == [quick, []]
    full, full_changes = out["full"]
    assert out["reference"]["full"]["seeds"] == 10 and full["seeds"] == 16 and full_changes
    assert out["full_seeds_given"][0]["seeds"] == 10 and out["full_seeds_given"][1] == []
