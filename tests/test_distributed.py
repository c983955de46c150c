"""Several processes: two local processes with two forced CPU devices each, joined by
``jax.distributed`` on localhost (the experiments' ``--distributed`` path, configured by the
environment), train on the 4 devices of both and give the numbers of one process on one
device; a checkpointed fit resumes across processes (Orbax), and only process 0 writes an
experiment's run directory."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from helpers import REPO_ROOT, TOY_FIT_PROBLEM, json_result, run_on_devices

_SCRIPT = textwrap.dedent("""
    import json, os, sys

    from experiments import framework as fw
    fw.initialize_distributed(False)  # JAXDL_DISTRIBUTED=1 and JAX_* in the environment

    import jax
    import numpy as np

    from experiments import parametrization
    from jaxdl import train
    from jaxdl.train import optim
""") + TOY_FIT_PROBLEM + textwrap.dedent("""
    from jax.experimental import multihost_utils  # the results of a 2-process run span both processes
    leaves = lambda tree: [np.asarray(multihost_utils.process_allgather(v, tiled=True), np.float64).ravel().tolist()
                           for v in jax.tree.leaves(tree)]
    out = {"process": jax.process_index(), "processes": jax.process_count(), "devices": jax.device_count()}
    single = train.fit(model, data, tx, **kwargs)
    out["fit"] = leaves(single.state.params) + [single.history["batch_loss"].tolist()]
    seeds = train.fit_seeds(model, data, tx, seeds=[0, 1], **kwargs)
    out["seeds"] = leaves(seeds.state.params) + [seeds.history["batch_loss"].ravel().tolist()]
    # Each process holds only its rows of the training and test sets.
    from jaxdl.data import process_shard, spread_over_processes
    spread = spread_over_processes(process_shard(data))
    out["rows_per_device"] = sorted({s.data.shape[0] for s in spread.x_train.addressable_shards})
    one = train.fit(model, spread, tx, **kwargs)
    out["spread"] = leaves(one.state.params) + [one.history["batch_loss"].tolist()]
    several = train.fit_seeds(model, spread, tx, seeds=[0, 1], **kwargs)
    try:  # a batch of 2 splits over 2 of the 4 devices, which do not hold every row
        train.fit(model, spread, tx, **dict(kwargs, batch_size=2))
        out["narrow_batch"] = "trained"
    except ValueError as error:
        out["narrow_batch"] = str(error)
    out["spread_seeds"] = leaves(several.state.params) + [several.history["batch_loss"].ravel().tolist()]
    # Two epochs, then a resume to three from the checkpoint every process shares.
    checkpoints = os.path.join(sys.argv[1], "checkpoints")
    train.fit(model, data, tx, checkpoint_dir=checkpoints, **dict(kwargs, epochs=2))
    resumed = train.fit(model, data, tx, checkpoint_dir=checkpoints, **kwargs)
    out["resumed"] = leaves(resumed.state.params) + [resumed.history["batch_loss"].tolist()]
    parametrization.main(["--size", "quick", "--config.toy_epochs=1", "--config.digits_epochs=1",
                          "--workdir", os.path.join(sys.argv[1], "run")])
    out["writes_to"] = fw.writing_workdir(os.path.join(sys.argv[1], "run"))
    print("RESULT " + json.dumps(out))
""")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("localhost", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    shared = tmp_path_factory.mktemp("distributed")
    port = _free_port()
    env = dict(os.environ, JAXDL_DISTRIBUTED="1", JAX_COORDINATOR_ADDRESS=f"localhost:{port}", JAX_NUM_PROCESSES="2",
               JAX_PLATFORMS="cpu", MPLBACKEND="Agg",
               XLA_FLAGS=" ".join([f for f in os.environ.get("XLA_FLAGS", "").split()
                                   if not f.startswith("--xla_force_host_platform_device_count")]
                                  + ["--xla_force_host_platform_device_count=2"]))
    processes = [subprocess.Popen([sys.executable, "-c", _SCRIPT, str(shared)], env=dict(env, JAX_PROCESS_ID=str(i)),
                                  cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for i in range(2)]
    outputs = []
    for process in processes:
        try:
            stdout, stderr = process.communicate(timeout=600)
        except subprocess.TimeoutExpired:
            for p in processes:
                p.kill()
            pytest.fail("the 2-process run took more than 600 s")
        if process.returncode != 0:
            pytest.fail(f"a process of the 2-process run exited with {process.returncode}:\n{stderr[-3000:]}")
        outputs.append(json_result(stdout))
    reference_dir = tmp_path_factory.mktemp("reference")
    reference = json_result(run_on_devices(_SCRIPT.replace("sys.argv[1]", repr(str(reference_dir))), num_devices=1,
                                           timeout=600))
    return outputs, reference, shared


def test_two_processes_see_four_devices(runs):
    outputs, reference, _ = runs
    assert [o["process"] for o in outputs] == [0, 1]
    assert all(o["processes"] == 2 and o["devices"] == 4 for o in outputs)
    assert reference["processes"] == 1 and reference["devices"] == 1


@pytest.mark.parametrize("name, reference_name", [("fit", "fit"), ("seeds", "seeds"), ("resumed", "resumed"),
                                                   ("spread", "fit"), ("spread_seeds", "seeds")])
def test_a_two_process_fit_equals_the_one_process_fit(runs, name, reference_name):
    outputs, reference, _ = runs
    for output in outputs:  # every process holds the same (replicated) result
        for got, expected in zip(output[name], reference[reference_name], strict=True):
            np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_a_spread_data_set_keeps_each_process_rows_on_its_devices(runs):
    outputs, reference, _ = runs
    assert [o["rows_per_device"] for o in outputs] == [[32], [32]]  # 64 training examples, 2 processes
    assert reference["rows_per_device"] == [64]
    for output in outputs:
        assert "spread over 2 processes" in output["narrow_batch"] and "batch_size" in output["narrow_batch"]


def test_only_process_zero_writes_the_run_directory(runs):
    outputs, _, shared = runs
    run = shared / "run"
    assert (run / "report.md").exists() and (run / "claims.json").exists()
    assert json.loads((run / "claims.json").read_text())  # the quick size need not hold them
    assert outputs[0]["writes_to"] == str(run)
    assert os.path.basename(outputs[1]["writes_to"]).startswith("jaxdl-process1-")
