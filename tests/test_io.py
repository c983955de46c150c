"""Tests of jaxdl.core.io (run directory, atomic writes) and jaxdl.plot (each figure kind)."""
from __future__ import annotations

import os
import subprocess
import sys
import zipfile

import chex
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from jaxdl import plot
from jaxdl.core import io

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _leftovers(folder):
    """Files in `folder` that look like temporaries of an atomic write."""
    return [name for name in os.listdir(folder) if name.startswith(".")]


# ----------------------------------------------------------------------------- atomic writes


def test_atomic_write_replaces_content_and_leaves_no_temp_files(tmp_path):
    path = tmp_path / "file.txt"
    io.atomic_write_text(path, "first")
    io.atomic_write_text(path, "second")
    assert path.read_text() == "second"
    io.atomic_write_bytes(path, b"\x00\x01")
    assert path.read_bytes() == b"\x00\x01"
    assert sorted(os.listdir(tmp_path)) == ["file.txt"]


def test_atomic_path_keeps_old_file_and_removes_temp_on_error(tmp_path):
    path = tmp_path / "file.txt"
    io.atomic_write_text(path, "kept")
    with pytest.raises(RuntimeError):
        with io.atomic_path(path) as tmp:
            with open(tmp, "w") as f:
                f.write("half")
            raise RuntimeError("interrupted")
    assert path.read_text() == "kept"
    assert _leftovers(tmp_path) == []


# ----------------------------------------------------------------------------- json


def test_save_json_converts_numpy_and_jax_values(tmp_path):
    path = tmp_path / "x.json"
    obj = {
        "f32": np.float32(1.5),
        "i64": np.int64(7),
        "bool": np.bool_(True),
        "array": np.arange(3),
        "jax": jnp.array([1.0, 2.0]),
        "jax_scalar": jnp.float32(0.25),
        "nested": {"b": (np.float64(2.0), 3), "a": [np.int32(1)]},
    }
    io.save_json(path, obj)
    loaded = io.load_json(path)
    assert loaded == {
        "f32": 1.5, "i64": 7, "bool": True, "array": [0, 1, 2], "jax": [1.0, 2.0],
        "jax_scalar": 0.25, "nested": {"a": [1], "b": [2.0, 3]},
    }
    assert type(loaded["i64"]) is int and type(loaded["bool"]) is bool
    text = path.read_text()
    assert text.index('"array"') < text.index('"bool"')  # sort_keys
    assert '\n  "array"' in text  # indent 2


def test_save_json_rejects_unknown_objects(tmp_path):
    with pytest.raises(TypeError, match="object"):
        io.save_json(tmp_path / "x.json", {"bad": object()})
    assert _leftovers(tmp_path) == []


# ----------------------------------------------------------------------------- metrics


def test_metrics_logger_survives_truncated_last_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    with io.MetricsLogger(path) as logger:
        logger.log(0, loss=np.float32(2.0), accuracy=0.5)
        logger.log(1, loss=jnp.float32(1.0), accuracy=0.75)
    with open(path, "a") as f:
        f.write('{"step": 2, "loss": 0.')  # A write cut off by an interruption.
    records = io.read_metrics(path)
    assert records == [{"step": 0, "loss": 2.0, "accuracy": 0.5},
                       {"step": 1, "loss": 1.0, "accuracy": 0.75}]
    # A resumed run drops the cut-off line and appends after the complete ones.
    with io.MetricsLogger(path) as logger:
        logger.log(3, loss=0.5)
    assert [r["step"] for r in io.read_metrics(path)] == [0, 1, 3]


def test_metrics_logger_writes_each_line_immediately(tmp_path):
    logger = io.MetricsLogger(tmp_path / "metrics.jsonl")
    logger.log(5, loss=1.0)
    # Read while the logger is still open: the line must already be on disk.
    assert io.read_metrics(tmp_path / "metrics.jsonl") == [{"step": 5, "loss": 1.0}]
    logger.close()


def test_read_metrics_rejects_corruption_before_the_last_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 0}\nnot json\n{"step": 2}\n')
    with pytest.raises(ValueError, match="line 2"):
        io.read_metrics(path)


# ----------------------------------------------------------------------------- npz


def test_npz_round_trip_is_exact(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {
        "f32": rng.normal(size=(3, 4)).astype(np.float32),
        "f64": rng.normal(size=(5,)),
        "i32": np.arange(6, dtype=np.int32).reshape(2, 3),
        "bool": np.array([True, False]),
        "scalar": np.float64(np.pi),
        "jax": jnp.arange(4.0),
    }
    path = tmp_path / "results.npz"
    io.save_npz(path, **arrays)
    loaded = io.load_npz(path)
    assert sorted(loaded) == sorted(arrays)
    # strict: the dtypes and shapes must survive the round trip, not only the values.
    chex.assert_trees_all_equal(loaded, {name: np.asarray(value) for name, value in arrays.items()}, strict=True)
    assert sorted(os.listdir(tmp_path)) == ["results.npz"]


def test_npz_refuses_object_arrays(tmp_path):
    with pytest.raises(TypeError, match="'bad'"):
        io.save_npz(tmp_path / "x.npz", bad=np.array([{"a": 1}], dtype=object))
    # A file holding a pickled object array (written by np.savez directly) is never unpickled.
    path = tmp_path / "evil.npz"
    np.savez(path, evil=np.array([{"a": 1}, None], dtype=object))
    with zipfile.ZipFile(path) as archive:
        assert archive.namelist() == ["evil.npy"]
    with pytest.raises(ValueError, match="allow_pickle"):
        io.load_npz(path)


# ----------------------------------------------------------------------------- run dir


def test_run_dir_paths_and_round_trips(tmp_path):
    run = io.RunDir(tmp_path / "runs" / "exp")
    assert os.path.isdir(run.root)
    assert run.config_path == os.path.join(run.root, "config.json")
    assert run.metrics_path == os.path.join(run.root, "metrics.jsonl")
    assert run.results_path == os.path.join(run.root, "results.npz")
    assert run.report_path == os.path.join(run.root, "report.md")
    assert run.figure_path("loss") == os.path.join(run.root, "loss.png")

    config = ml_collections.ConfigDict({"lr": 0.1, "model": {"width": 8}, "sizes": (1, 2)})
    run.save_config(config)
    assert io.load_json(run.config_path) == {"lr": 0.1, "model": {"width": 8}, "sizes": [1, 2]}
    run.save_config({"seed": np.int64(3)})
    assert io.load_json(run.config_path) == {"seed": 3}

    run.save_results(losses=np.array([3.0, 2.0, 1.0]))
    np.testing.assert_array_equal(run.load_results()["losses"], [3.0, 2.0, 1.0])
    with run.logger() as logger:
        logger.log(0, loss=1.0)
    assert io.read_metrics(run.metrics_path) == [{"step": 0, "loss": 1.0}]


def test_write_report(tmp_path):
    path = tmp_path / "report.md"
    text = io.write_report(path, "Title", [("Results", "| a |\n|---|\n| 1 |"),
                                           ("Config", {"lr": 0.1, "steps": 10})])
    assert path.read_text() == text
    assert text.startswith("# Title\n")
    assert "## Results\n\n| a |" in text
    assert text.index("## Results") < text.index("## Config")
    assert "- `lr`: 0.1" in text and "- `steps`: 10" in text


# ----------------------------------------------------------------------------- plots


def _assert_png(path):
    data = open(path, "rb").read()
    assert len(data) > 1000
    assert data[:8] == PNG_MAGIC


def test_line_plot(tmp_path):
    x = np.arange(10)
    path = tmp_path / "lines.png"
    fig = plot.line_plot({"plain": (x, x ** 2 + 1.0), "band": (x, x + 1.0, 0.1 * x)},
                         xlabel="step", ylabel="loss", title="t", logy=True, path=path)
    assert fig is not None
    _assert_png(path)
    assert _leftovers(tmp_path) == []
    with pytest.raises(ValueError, match="'bad'"):
        plot.line_plot({"bad": (x,)})


def test_decision_boundary(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 2))
    y = (x[:, 0] > 0).astype(int)
    path = tmp_path / "boundary.png"
    plot.decision_boundary(lambda p: (p[:, 0] > 0).astype(int), x, y, title="b", path=path,
                           resolution=50)
    _assert_png(path)
    path = tmp_path / "boundaries.png"
    plot.decision_boundaries({"vertical": lambda p: (p[:, 0] > 0).astype(int),
                              "horizontal": lambda p: (p[:, 1] > 0).astype(int)},
                             x, y, title="two models", path=path, resolution=30)
    _assert_png(path)
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        plot.decision_boundary(lambda p: p[:, 0], np.zeros((5, 3)), np.zeros(5))


def test_contour_surface(tmp_path):
    xs = np.linspace(-1, 1, 12)
    ys = np.linspace(-2, 2, 16)
    z = xs[None, :] ** 2 + ys[:, None] ** 2 + 0.1  # (len(ys), len(xs))
    for filled, log in [(True, False), (False, True)]:
        path = tmp_path / f"surface_{filled}_{log}.png"
        plot.contour_surface(xs, ys, z, title="s", path=path, filled=filled, log=log, levels=8)
        _assert_png(path)
    with pytest.raises(ValueError, match="len\\(ys\\), len\\(xs\\)"):
        plot.contour_surface(xs, ys, z.T)


def test_trajectories_2d(tmp_path):
    def rosenbrock(x, y):
        return (1 - x) ** 2 + 100 * (y - x ** 2) ** 2

    paths = {"gd": np.stack([np.linspace(-1, 1, 20), np.linspace(1, 1, 20)], axis=1),
             "adam": np.array([[-1.0, 1.0], [0.0, 0.5], [1.0, 1.0]])}
    path = tmp_path / "paths.png"
    plot.trajectories_2d(rosenbrock, paths, xlim=(-2, 2), ylim=(-1, 3), title="r", path=path,
                         resolution=50)
    _assert_png(path)


def test_bar_chart(tmp_path):
    path = tmp_path / "bars.png"
    plot.bar_chart(["a", "b", "c"], [0.9, 0.8, 0.7], errors=[0.01, 0.02, 0.03],
                   reference=[0.95, None, 0.7], ylabel="accuracy", title="c", path=path)
    _assert_png(path)


def test_save_figure_picks_format_from_extension(tmp_path):
    fig = plot.line_plot({"a": ([0, 1], [0, 1])})
    path = plot.save_figure(fig, tmp_path / "figure.pdf")
    assert open(path, "rb").read(4) == b"%PDF"
    assert sorted(os.listdir(tmp_path)) == ["figure.pdf"]


def test_panels_draws_each_panel_with_its_dashed_prediction(tmp_path):
    x = np.arange(1, 6)
    path = tmp_path / "panels.png"
    fig = plot.panels({"first": {"a": (x, x ** 2.0, x ** 2.0 + 1)}, "second": {"b": (x, x + 1.0)},
                       "third": {"c": (x, 2.0 * x)}}, columns=2, xlabel=("step", "width", "depth"),
                      logy=(True, False, False), ylim=(None, (0, 10), None), path=path)
    _assert_png(path)
    titles = [ax.get_title() for ax in fig.axes]  # the axes row by row
    assert titles == ["first", "third", "second", ""]  # panels fill the columns: second is below first
    assert not fig.axes[3].axison  # the spare panel is blank
    first, second = fig.axes[0], fig.axes[2]
    lines = first.get_lines()
    assert len(lines) == 2 and lines[1].get_linestyle() == "--" and lines[1].get_color() == lines[0].get_color()
    np.testing.assert_allclose(lines[1].get_ydata(), x ** 2.0 + 1)
    assert first.get_yscale() == "log" and second.get_yscale() == "linear" and second.get_ylim() == (0, 10)
    assert first.get_xlabel() == "step" and second.get_xlabel() == "width"


def test_importing_and_plotting_never_switch_the_backend_or_touch_pyplot():
    """A notebook's inline backend survives ``import jaxdl`` and a figure drawn by jaxdl: the
    plotting builds bare Figures (run in a fresh interpreter, whose backend we choose)."""
    script = (
        "import matplotlib\n"
        "matplotlib.use('svg')\n"
        "import numpy as np\n"
        "import jaxdl\n"
        "from jaxdl import plot\n"
        "import matplotlib.pyplot as plt\n"
        "fig = plot.line_plot({'a': (np.arange(3), np.arange(3))})\n"
        "fig.savefig(__import__('io').BytesIO(), format='png')\n"
        "print(matplotlib.get_backend(), len(plt.get_fignums()), type(fig).__name__)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.split() == ["svg", "0", "Figure"]
