"""The peer section's train-step rows: jaxdl's scanned epochs against PyTorch loops over the
same batches from the same weights (the MLP with Adam, the train-step row's MLP, the CNN and
ResNet-20 rows), and a profile of one conv layer that shows where the convolution gap is
(XLA's convolution and PatchConv, jitted and inside a scan, against PyTorch). PyTorch is an
optional peer, imported inside each function.
"""
from __future__ import annotations

import types

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from experiments.benchmark.timing import generic_point, synthetic_data, time_call
from experiments.benchmark.torch_models import check_same_outputs, torch_cnn2d, torch_mlp, torch_resnet
from experiments.benchmark.training import epoch_calls, host_state
from jaxdl import train
from jaxdl.train import optim
from jaxdl.models import get_model
from jaxdl.models.layers import PatchConv


def bench_train_steps(config, setup) -> dict:
    """Train steps against PyTorch, per step:

    - ``epoch``: an epoch of the peer MLP on its data at batch ``config.peer_batch_size`` with
      Adam (1e-3), jaxdl's scanned epoch against a PyTorch loop over the same batches (the
      issue's overhead-bound case);
    - ``step``: one SGD step of the train-step row's MLP on one batch, jitted, against the
      PyTorch step (compute-bound on a CPU: both near the FLOP floor).
    """
    import torch  # noqa: PLC0415

    data = types.SimpleNamespace(x_train=setup["x"], y_train=setup["y"])
    model = get_model("mlp", widths=tuple(config.peer_widths), num_outputs=int(setup["y"].max()) + 1)
    scanned, _, order = epoch_calls(model, data, int(config.peer_batch_size), config.seed,
                                    tx=optim.get_optimizer("adam", 1e-3))
    torch_model = torch_mlp(generic_point(jax.eval_shape(model.init, jax.random.key(config.seed),
                                                         setup["x"][:1])["params"], config.seed),
                            len(config.peer_widths))
    adam = torch.optim.Adam(torch_model.parameters(), lr=1e-3)
    x, y = setup["torch_batch"]
    batches = [torch.from_numpy(index.astype(np.int64)) for index in order]

    def torch_epoch(_):
        for index in batches:
            adam.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(torch_model(x[index]), y[index]).backward()
            adam.step()
        return 0

    steps = len(batches)
    epoch = {"jaxdl": time_call(scanned, None, repeats=config.repeats) / steps,
             "peer": time_call(torch_epoch, None, repeats=config.repeats) / steps, "steps": steps}

    model = get_model("mlp", widths=tuple(config.step_widths), num_outputs=10)
    step_data = synthetic_data(config.step_batch_size, config.step_input_dim, 10, config.seed)
    tx = optim.get_optimizer("sgd", 0.01)
    state = train.init_state(model, tx, step_data.x_train[:1], jax.random.key(config.seed))
    step = jax.jit(train.make_train_step(model, tx))
    batch = (jnp.asarray(step_data.x_train), jnp.asarray(step_data.y_train))
    ours = time_call(lambda s: step(s, batch)[0].params, state, repeats=config.repeats * 20)
    torch_model = torch_mlp(state.params, len(config.step_widths))
    sgd = torch.optim.SGD(torch_model.parameters(), lr=0.01)
    step_x, step_y = torch.from_numpy(step_data.x_train), torch.from_numpy(step_data.y_train.astype(np.int64))

    def torch_step(_):
        sgd.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(torch_model(step_x), step_y).backward()
        sgd.step()
        return 0

    return {"epoch": epoch, "step": {"jaxdl": ours, "peer": time_call(torch_step, None, repeats=config.repeats * 20)}}


def _conv_models(config):
    """The benchmark's CNN and ResNet (``conv_implementation='auto'``), with their PyTorch builders."""
    cnn = get_model("cnn2d", channels=tuple(config.conv_channels), kernel_size=3, pool="max", dense_widths=(128,),
                    num_outputs=10)
    resnet = get_model("resnet", depth=config.resnet_depth, num_outputs=10)
    return {"cnn": (cnn, lambda state: torch_cnn2d(state.params, len(config.conv_channels), 1)),
            "resnet": (resnet, lambda state: torch_resnet({"params": state.params, **state.model_state},
                                                          config.resnet_depth))}


def bench_conv_steps(config) -> dict:
    """Per-step seconds of a scanned epoch of ``config.peer_conv_steps`` SGD steps (train mode)
    of the CNN and ResNet rows, against a PyTorch loop over the same batches from the same
    weights (checked first: train-mode outputs on the first batch)."""
    import torch  # noqa: PLC0415

    steps, batch_size = int(config.peer_conv_steps), int(config.conv_batch_size)
    data = synthetic_data(steps * batch_size, tuple(config.conv_image_shape), 10, config.seed)
    rows = {}
    for name, (model, build) in _conv_models(config).items():
        tx = optim.get_optimizer("sgd", 0.01)
        state = host_state(model, tx, data.x_train[:1], config.seed)
        scanned, _, order = epoch_calls(model, data, batch_size, config.seed, host=True, tx=tx)
        torch_model = build(state).train()
        x = torch.from_numpy(np.ascontiguousarray(data.x_train.transpose(0, 3, 1, 2)))
        y = torch.from_numpy(data.y_train.astype(np.int64))
        first = order[0]
        ours = train.apply_model(model, state.params, state.model_state, jnp.asarray(data.x_train[first]), train=True)
        with torch.no_grad():
            theirs = torch_model(x[torch.from_numpy(first.astype(np.int64))]).numpy()
        agreement = check_same_outputs(ours[0], theirs, name)
        sgd = torch.optim.SGD(torch_model.parameters(), lr=0.01)
        batches = [torch.from_numpy(index.astype(np.int64)) for index in order]

        def torch_epoch(_, torch_model=torch_model, sgd=sgd, batches=batches, x=x, y=y):
            for index in batches:
                sgd.zero_grad(set_to_none=True)
                torch.nn.functional.cross_entropy(torch_model(x[index]), y[index]).backward()
                sgd.step()
            return 0

        rows[name] = {"jaxdl": time_call(scanned, None, repeats=config.conv_repeats) / steps,
                      "peer": time_call(torch_epoch, None, repeats=config.conv_repeats) / steps,
                      "agreement": agreement}
    return rows


def conv_profile(config) -> list[dict]:
    """Where the convolution gap is: for each conv layer of the CNN row (its input shape at
    batch ``config.conv_batch_size``), seconds of the forward pass with the gradients of the
    loss ``sum(tanh(conv(x)))`` with respect to input and kernel, by XLA's convolution and by
    PatchConv, each in a jitted call and inside a ``lax.scan`` (per iteration), and by PyTorch."""
    import torch  # noqa: PLC0415

    rng = np.random.default_rng(config.seed)
    height, _, channels = config.conv_image_shape
    profile = []
    for features in config.conv_channels:
        x = rng.normal(size=(config.conv_batch_size, height, height, channels)).astype(np.float32)
        kernel = (rng.normal(size=(3, 3, channels, features)) / np.sqrt(9 * channels)).astype(np.float32)
        row = {"shape": f"{config.conv_batch_size}x{height}x{height}x{channels} -> {features}"}
        for implementation, layer in (("xla", nn.Conv(features, (3, 3), padding="SAME")),
                                      ("patches", PatchConv(features, (3, 3)))):
            def loss(kernel, x, layer=layer):
                return jnp.sum(jnp.tanh(layer.apply({"params": {"kernel": kernel, "bias": jnp.zeros(features)}}, x)))

            gradient = jax.grad(loss, argnums=(0, 1))

            def scanned(kernel, x, gradient=gradient):
                def body(kernel, _):
                    d_kernel, d_x = gradient(kernel, x)
                    return kernel - 1e-6 * d_kernel, jnp.sum(d_x)

                return jax.lax.scan(body, kernel, None, length=int(config.profile_scan_length))

            row[f"{implementation}_jit"] = time_call(jax.jit(gradient), kernel, x, repeats=config.conv_repeats)
            row[f"{implementation}_scan"] = time_call(jax.jit(scanned), kernel, x, repeats=config.conv_repeats
                                                      ) / int(config.profile_scan_length)
        torch_x = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))).requires_grad_(True)
        torch_kernel = torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1))).requires_grad_(True)

        def torch_call(_, torch_x=torch_x, torch_kernel=torch_kernel):
            torch_x.grad = torch_kernel.grad = None
            torch.tanh(torch.nn.functional.conv2d(torch_x, torch_kernel, padding=1)).sum().backward()
            return 0

        row["torch"] = time_call(torch_call, None, repeats=config.conv_repeats)
        profile.append(row)
        height, channels = height // 2, features  # after the 2x2 max-pooling
    return profile
