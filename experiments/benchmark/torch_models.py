"""The zoo's MLP, CNN2D and ResNet rebuilt in PyTorch with jaxdl's weights, for the benchmark's
peer section (PyTorch is an optional peer, imported inside each function).

Layouts: Flax kernels are ``(in, out)`` for dense layers and ``HWIO`` for convolutions,
PyTorch weights ``(out, in)`` and ``OIHW``; images are NHWC in jaxdl and NCHW in PyTorch, so
the CNN flattens after moving channels last (Flax's flatten order). ``'SAME'`` convolutions pad
as XLA does (``ceil(n / stride)`` outputs, the odd pad after), which for a stride-2 convolution
on an even size is ``(0, 1)``, not PyTorch's symmetric ``padding=1``. BatchNorm: Flax's
``momentum`` m is PyTorch's ``1 - m``; both normalise by the biased batch variance.
"""
from __future__ import annotations

import numpy as np


def _tensor(array, transpose=None):
    import torch  # noqa: PLC0415

    array = np.asarray(array, np.float32)
    # A writable C-ordered copy: PyTorch does not take read-only arrays (jax.Array views are).
    return torch.from_numpy(np.array(array if transpose is None else array.transpose(transpose), order="C"))


def _linear(params):
    import torch  # noqa: PLC0415

    linear = torch.nn.Linear(*np.shape(params["kernel"]))
    with torch.no_grad():
        linear.weight.copy_(_tensor(params["kernel"], (1, 0)))
        linear.bias.copy_(_tensor(params["bias"]))
    return linear


def torch_mlp(params, num_hidden: int):
    """A ``torch.nn.Sequential`` of Linear and ReLU layers holding jaxdl's MLP ``params``
    (``hidden_i`` and ``output`` Dense layers)."""
    import torch  # noqa: PLC0415

    layers = []
    for name in [f"hidden_{i}" for i in range(num_hidden)] + ["output"]:
        layers += [_linear(params[name]), torch.nn.ReLU()] if name != "output" else [_linear(params[name])]
    return torch.nn.Sequential(*layers)


def _same_conv(params, stride: int = 1):
    """A PyTorch module: XLA's 'SAME' padding for the input's size, then the convolution."""
    import torch  # noqa: PLC0415

    kernel = np.asarray(params["kernel"])
    size, _, channels, features = kernel.shape
    conv = torch.nn.Conv2d(channels, features, size, stride=stride, padding=0, bias="bias" in params)
    with torch.no_grad():
        conv.weight.copy_(_tensor(kernel, (3, 2, 0, 1)))
        if "bias" in params:
            conv.bias.copy_(_tensor(params["bias"]))

    class SameConv(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = conv

        def forward(self, x):
            pads = []
            for n in (x.shape[3], x.shape[2]):  # F.pad takes the last axis first
                total = max((-(-n // stride) - 1) * stride + size - n, 0)
                pads += [total // 2, total - total // 2]
            return self.conv(torch.nn.functional.pad(x, pads))

    return SameConv()


def torch_cnn2d(params, num_convs: int, num_dense: int):
    """jaxdl's ``CNN2D`` (3x3 'SAME' convs, ReLU, 2x2 max-pooling, flatten, dense ReLU layers, a
    linear read-out) on NCHW images, with ``params`` (``conv_i``, ``dense_i``, ``output``).
    Max-pooling matches Flax's 'SAME' pooling on even sizes."""
    import torch  # noqa: PLC0415

    layers = []
    for i in range(num_convs):
        layers += [_same_conv(params[f"conv_{i}"]), torch.nn.ReLU(), torch.nn.MaxPool2d(2)]

    class ChannelsLastFlatten(torch.nn.Module):
        def forward(self, x):
            return x.permute(0, 2, 3, 1).flatten(1)

    layers.append(ChannelsLastFlatten())
    for i in range(num_dense):
        layers += [_linear(params[f"dense_{i}"]), torch.nn.ReLU()]
    layers.append(_linear(params["output"]))
    return torch.nn.Sequential(*layers)


def _batch_norm(params, stats, momentum: float):
    import torch  # noqa: PLC0415

    norm = torch.nn.BatchNorm2d(np.shape(params["scale"])[0], eps=1e-5, momentum=1.0 - momentum)
    with torch.no_grad():
        norm.weight.copy_(_tensor(params["scale"]))
        norm.bias.copy_(_tensor(params["bias"]))
        norm.running_mean.copy_(_tensor(stats["mean"]))
        norm.running_var.copy_(_tensor(stats["var"]))
    return norm


def torch_resnet(variables, depth: int, momentum: float = 0.9):
    """jaxdl's ``ResNet`` of ``depth`` (BatchNorm, projection shortcuts, ``alpha = 1``) on NCHW
    images, with its ``variables`` (``params`` and ``batch_stats``)."""
    import torch  # noqa: PLC0415

    params, stats = variables["params"], variables["batch_stats"]

    class Block(torch.nn.Module):
        def __init__(self, p, s, stride):
            super().__init__()
            self.conv_0, self.norm_0 = _same_conv(p["conv_0"], stride), _batch_norm(p["norm_0"], s["norm_0"], momentum)
            self.conv_1, self.norm_1 = _same_conv(p["conv_1"]), _batch_norm(p["norm_1"], s["norm_1"], momentum)
            self.shortcut = torch.nn.Identity()
            if "shortcut_conv" in p:
                self.shortcut = torch.nn.Sequential(_same_conv(p["shortcut_conv"], stride),
                                                    _batch_norm(p["shortcut_norm"], s["shortcut_norm"], momentum))

        def forward(self, x):
            y = self.norm_1(self.conv_1(torch.relu(self.norm_0(self.conv_0(x)))))
            return torch.relu(self.shortcut(x) + y)

    class ResNet(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = torch.nn.Sequential(_same_conv(params["stem_conv"]),
                                            _batch_norm(params["stem_norm"], stats["stem_norm"], momentum),
                                            torch.nn.ReLU())
            blocks = []
            for stage in range(3):
                for block in range((depth - 2) // 6):
                    name = f"stage_{stage}_block_{block}"
                    blocks.append(Block(params[name], stats[name], 2 if stage > 0 and block == 0 else 1))
            self.blocks = torch.nn.Sequential(*blocks)
            self.output = _linear(params["output"])

        def forward(self, x):
            return self.output(self.blocks(self.stem(x)).mean(dim=(2, 3)))

    return ResNet()


def check_same_outputs(ours, theirs, what: str) -> float:
    """The largest difference between two arrays of outputs (jaxdl's, PyTorch's), relative to
    the largest magnitude; ``ValueError`` naming ``what`` unless it is within float32 rounding
    (1e-4). Nothing is timed before this check."""
    ours, theirs = np.asarray(ours, np.float64), np.asarray(theirs, np.float64)
    difference = float(np.abs(ours - theirs).max() / max(np.abs(ours).max(), 1.0))
    if not difference <= 1e-4:
        raise ValueError(f"the PyTorch {what} differs from jaxdl's: outputs by {difference:.3g} relative to their "
                         "largest entry; nothing was timed")
    return difference
