"""File data sets: ``mnist``, ``fashion_mnist`` (IDX files) and ``cifar10`` (the binary version),
read from a local folder by :mod:`jaxdl.data.readers`, downloaded only with ``download=True`` and
then verified by SHA-256. Nothing is ever unpickled.
"""
from __future__ import annotations

from jaxdl.data import readers
from jaxdl.data.dataset import Dataset, classification

__all__ = []


def _idx_set(name: str, root, download: bool, verify: bool) -> Dataset:
    x_train, y_train, x_test, y_test = readers.read_idx_dataset(
        name, root, download=download, verify=verify
    )
    # A trailing channel axis makes the greyscale images NHWC like every other image set.
    x_train, x_test = x_train[..., None] / 255.0, x_test[..., None] / 255.0
    return classification(name, x_train, y_train, x_test, y_test, 10)


def _load_mnist(
    root: readers.PathLike | None = None, download: bool = False, verify: bool = True
) -> Dataset:
    """MNIST (LeCun et al. 1998) from IDX files in `root` (default ~/.jaxdl/data/mnist).

    x: (N, 28, 28, 1) float32 in [0, 1]; y: (N,) int32; 60000 train, 10000 test. Files may be
    gzipped or not; gzipped files are checked against their published SHA-256 unless
    `verify=False`. `download=True` fetches missing files.
    """
    return _idx_set("mnist", root, download, verify)


def _load_fashion_mnist(
    root: readers.PathLike | None = None, download: bool = False, verify: bool = True
) -> Dataset:
    """Fashion-MNIST (Xiao et al. 2017): as `mnist`, ten clothing classes, default root
    ~/.jaxdl/data/fashion_mnist. x: (N, 28, 28, 1) float32 in [0, 1]; y: (N,) int32."""
    return _idx_set("fashion_mnist", root, download, verify)


def _load_cifar10(
    root: readers.PathLike | None = None, download: bool = False, verify: bool = True
) -> Dataset:
    """CIFAR-10 (Krizhevsky 2009), binary version, from root/cifar-10-batches-bin (default root
    ~/.jaxdl/data/cifar10). x: (N, 32, 32, 3) float32 in [0, 1], NHWC; y: (N,) int32; 50000
    train, 10000 test. `download=True` fetches and verifies the archive, then extracts it."""
    x_train, y_train, x_test, y_test = readers.read_cifar10(
        root, download=download, verify=verify
    )
    return classification("cifar10", x_train / 255.0, y_train, x_test / 255.0, y_test, 10)
