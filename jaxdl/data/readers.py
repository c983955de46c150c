"""Readers, checksums and the downloader for the file data sets.

MNIST and Fashion-MNIST are IDX files (LeCun et al. 1998; Xiao et al. 2017), CIFAR-10 is its
binary version (Krizhevsky 2009). Both formats are raw bytes with a fixed layout, so nothing here
ever unpickles. `jaxdl.data.load` is the public entry point; these functions return uint8 arrays.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import pathlib
import shutil
import tarfile
import tempfile
import urllib.request

import numpy as np

__all__ = ["IDX_IMAGES_MAGIC", "IDX_LABELS_MAGIC", "IDX_SPLITS", "IDX_STEMS", "CIFAR10_ARCHIVE", "CIFAR10_FOLDER",
           "CIFAR10_TRAIN_FILES", "CIFAR10_TEST_FILE", "CIFAR10_RECORD_BYTES", "URLS", "CHECKSUMS", "default_root",
           "resolve_root", "sha256_of_file", "verify_sha256", "download_dataset", "read_idx", "read_idx_dataset",
           "read_cifar_batch", "read_cifar10"]

PathLike = str | os.PathLike

# IDX magic: two zero bytes, the element type (0x08 = unsigned byte), the number of dimensions.
IDX_IMAGES_MAGIC = 0x00000803
IDX_LABELS_MAGIC = 0x00000801
IDX_SPLITS = (
    ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
)
IDX_STEMS = tuple(stem for split in IDX_SPLITS for stem in split)

CIFAR10_ARCHIVE = "cifar-10-binary.tar.gz"
CIFAR10_FOLDER = "cifar-10-batches-bin"
CIFAR10_TRAIN_FILES = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
CIFAR10_TEST_FILE = "test_batch.bin"
CIFAR10_RECORD_BYTES = 1 + 3 * 32 * 32  # one label byte, then the image as 3 planes of 32x32

_MNIST_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"
_FASHION_MNIST_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"

URLS: dict[str, dict[str, str]] = {
    "mnist": {f"{stem}.gz": f"{_MNIST_URL}{stem}.gz" for stem in IDX_STEMS},
    "fashion_mnist": {f"{stem}.gz": f"{_FASHION_MNIST_URL}{stem}.gz" for stem in IDX_STEMS},
    "cifar10": {CIFAR10_ARCHIVE: "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"},
}

# SHA-256 of the published files, as pinned by tensorflow_datasets' url_checksums (mnist.txt,
# fashion_mnist.txt, cifar10.txt) and matched by other projects' pins. The ossci mirror serves
# LeCun's original bytes (torchvision checks the same MD5s against both), so the pins carry over.
CHECKSUMS: dict[str, dict[str, str | None]] = {
    "mnist": {
        "train-images-idx3-ubyte.gz":
            "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        "train-labels-idx1-ubyte.gz":
            "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        "t10k-images-idx3-ubyte.gz":
            "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        "t10k-labels-idx1-ubyte.gz":
            "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    },
    "fashion_mnist": {
        "train-images-idx3-ubyte.gz":
            "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
        "train-labels-idx1-ubyte.gz":
            "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
        "t10k-images-idx3-ubyte.gz":
            "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
        "t10k-labels-idx1-ubyte.gz":
            "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
    },
    "cifar10": {
        CIFAR10_ARCHIVE: "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd",
    },
}


def default_root(name: str) -> pathlib.Path:
    """The folder a file data set lives in when `root` is not given: ~/.jaxdl/data/<name>."""
    return pathlib.Path("~/.jaxdl/data", name).expanduser()


def resolve_root(name: str, root: PathLike | None) -> pathlib.Path:
    return default_root(name) if root is None else pathlib.Path(root).expanduser()


# ----------------------------------------------------------------------------- checksums

def sha256_of_file(path: PathLike) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_sha256(path: PathLike, expected: str | None, *, label: str | None = None) -> None:
    """Raise ValueError unless the file's SHA-256 equals `expected`.

    `expected=None` (no published checksum known) also raises, quoting the file's SHA-256 so
    that it can be checked by hand and then accepted with `verify=False`. `label` names the file
    in the message when `path` is a temporary name.
    """
    label = label or str(path)
    actual = sha256_of_file(path)
    if expected is None:
        raise ValueError(
            f"no known SHA-256 for {label}; its SHA-256 is {actual}. Check it against the "
            "publisher, then pass verify=False to accept it."
        )
    if actual != expected.lower():
        raise ValueError(f"checksum mismatch for {label}: expected {expected}, got {actual}")


# ----------------------------------------------------------------------------- download

def _fetch_url(url: str, destination: pathlib.Path) -> None:
    # The one function that touches the network; tests replace it with a local copy.
    with urllib.request.urlopen(url, timeout=60) as response, open(destination, "wb") as out:
        shutil.copyfileobj(response, out, 1 << 20)


def _download_file(url: str, path: pathlib.Path, expected: str | None, verify: bool) -> None:
    # Download beside the target and rename only once verified, so an interrupted or corrupt
    # download never sits under the final name.
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    os.close(handle)
    temporary = pathlib.Path(temporary)
    try:
        print(f"downloading {url} -> {path}", flush=True)
        _fetch_url(url, temporary)
        if verify:
            verify_sha256(temporary, expected, label=path.name)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _extract_tar(archive: pathlib.Path, root: pathlib.Path, folder: str) -> None:
    # Extract into a scratch folder and move the result into place, so a half-extracted folder
    # never passes for a complete one.
    scratch = pathlib.Path(tempfile.mkdtemp(dir=root, prefix=".extract."))
    try:
        with tarfile.open(archive, "r:gz") as tar:
            if hasattr(tarfile, "data_filter"):
                tar.extractall(scratch, filter="data")
            else:  # Python without PEP 706: refuse links and paths leaving the folder ourselves.
                for member in tar.getmembers():
                    target = (scratch / member.name).resolve()
                    if not (member.isfile() or member.isdir()) or not target.is_relative_to(
                        scratch.resolve()
                    ):
                        raise ValueError(f"{archive}: refusing unsafe member {member.name!r}")
                tar.extractall(scratch)
        if not (scratch / folder).is_dir():
            raise ValueError(f"{archive}: expected a folder {folder!r} inside the archive")
        shutil.rmtree(root / folder, ignore_errors=True)
        os.replace(scratch / folder, root / folder)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def download_dataset(
    name: str, root: PathLike | None = None, *, verify: bool = True
) -> pathlib.Path:
    """Download the missing files of `name` ('mnist', 'fashion_mnist' or 'cifar10') into root.

    Each file is checked against `CHECKSUMS` before it is renamed into place (unless
    `verify=False`). CIFAR-10's archive is extracted to root/cifar-10-batches-bin and then
    deleted. Returns the folder.
    """
    if name not in URLS:
        raise ValueError(f"no download for data set {name!r}; known: {', '.join(sorted(URLS))}")
    root = resolve_root(name, root)
    root.mkdir(parents=True, exist_ok=True)
    if name == "cifar10":
        archive = root / CIFAR10_ARCHIVE
        if not archive.exists():
            url, expected = URLS[name][archive.name], CHECKSUMS[name][archive.name]
            _download_file(url, archive, expected, verify)
        elif verify:
            verify_sha256(archive, CHECKSUMS[name][archive.name])
        _extract_tar(archive, root, CIFAR10_FOLDER)
        archive.unlink()  # the extracted batches are what load reads; keep one copy on disk
        return root
    for filename, url in URLS[name].items():
        if _find_idx_file(root, filename.removesuffix(".gz")) is None:
            _download_file(url, root / filename, CHECKSUMS[name].get(filename), verify)
    return root


def _missing_error(name: str, folder: pathlib.Path, missing: list[str]) -> FileNotFoundError:
    files = ", ".join(repr(file) for file in missing)
    return FileNotFoundError(
        f"{name}: file {files} not found in folder {folder}. Pass download=True to "
        f"load({name!r}, ...) to fetch it, or place the file there."
    )


# ----------------------------------------------------------------------------- IDX

def _find_idx_file(folder: pathlib.Path, stem: str) -> pathlib.Path | None:
    for candidate in (folder / f"{stem}.gz", folder / stem):
        if candidate.is_file():
            return candidate
    return None


def read_idx(path: PathLike, expected_magic: int) -> np.ndarray:
    """Read an unsigned-byte IDX file, gzipped (name ends in .gz) or plain, as a uint8 array.

    `expected_magic` is IDX_IMAGES_MAGIC for (N, rows, cols) images or IDX_LABELS_MAGIC for (N,)
    labels. Raises ValueError naming the file on a wrong magic number, a truncated file or a
    data size that disagrees with the header.
    """
    path = pathlib.Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as file:
            raw = file.read()
    except (OSError, EOFError) as error:  # gzip.BadGzipFile is an OSError
        raise ValueError(
            f"{path}: cannot read the file ({error}); it is corrupt or truncated"
        ) from error
    ndim = expected_magic & 0xFF
    if len(raw) < 4:
        raise ValueError(
            f"{path}: truncated IDX file of {len(raw)} bytes; expected a 4-byte magic number"
        )
    magic = int.from_bytes(raw[:4], "big")
    if magic != expected_magic:
        raise ValueError(
            f"{path}: wrong IDX magic number 0x{magic:08X}; expected 0x{expected_magic:08X} "
            f"(unsigned bytes, {ndim} dimensions)"
        )
    header_bytes = 4 + 4 * ndim
    if len(raw) < header_bytes:
        raise ValueError(
            f"{path}: truncated IDX header; expected {header_bytes} bytes, found {len(raw)}"
        )
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected_bytes, found_bytes = int(np.prod(shape)), len(raw) - header_bytes
    if found_bytes != expected_bytes:
        problem = "truncated file" if found_bytes < expected_bytes else "trailing bytes"
        raise ValueError(
            f"{path}: size mismatch ({problem}): the header declares shape {shape}, i.e. "
            f"{expected_bytes} data bytes, but the file holds {found_bytes}"
        )
    return np.frombuffer(raw, np.uint8, offset=header_bytes).reshape(shape)


def read_idx_dataset(
    name: str, root: PathLike | None, *, download: bool, verify: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(train images, train labels, test images, test labels) of an IDX data set, all uint8.

    Images have shape (N, rows, cols), labels (N,). Files are `<stem>.gz` or plain `<stem>`;
    gzipped files with a published checksum are verified when `verify` is true.
    """
    folder = resolve_root(name, root)
    missing = [f"{stem}[.gz]" for stem in IDX_STEMS if _find_idx_file(folder, stem) is None]
    if missing:
        if not download:
            raise _missing_error(name, folder, missing)
        download_dataset(name, folder, verify=verify)
    arrays = []
    for images_stem, labels_stem in IDX_SPLITS:
        images_path = _find_idx_file(folder, images_stem)
        labels_path = _find_idx_file(folder, labels_stem)
        if verify:
            for path in (images_path, labels_path):
                if path.suffix == ".gz":  # no published checksum exists for unzipped files
                    verify_sha256(path, CHECKSUMS[name].get(path.name))
        images = read_idx(images_path, IDX_IMAGES_MAGIC)
        labels = read_idx(labels_path, IDX_LABELS_MAGIC)
        if len(images) != len(labels):
            raise ValueError(
                f"{images_path} holds {len(images)} images but {labels_path} holds "
                f"{len(labels)} labels"
            )
        arrays += [images, labels]
    return tuple(arrays)


# ----------------------------------------------------------------------------- CIFAR-10

def read_cifar_batch(path: PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read one CIFAR-10 binary batch: (images (N, 32, 32, 3) uint8 NHWC, labels (N,) uint8).

    Each 3073-byte record is a label byte followed by the red, green and blue 32x32 planes.
    """
    path = pathlib.Path(path)
    raw = path.read_bytes()
    if len(raw) == 0 or len(raw) % CIFAR10_RECORD_BYTES:
        raise ValueError(
            f"{path}: size mismatch: {len(raw)} bytes is not a positive multiple of the "
            f"{CIFAR10_RECORD_BYTES}-byte record (1 label byte + 3072 pixel bytes); truncated file?"
        )
    records = np.frombuffer(raw, np.uint8).reshape(-1, CIFAR10_RECORD_BYTES)
    labels = records[:, 0]
    if labels.max() > 9:
        raise ValueError(
            f"{path}: label {labels.max()} outside 0..9; expected the CIFAR-10 binary version "
            "(CIFAR-100 records carry two label bytes)"
        )
    images = records[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels


def read_cifar10(
    root: PathLike | None, *, download: bool, verify: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(train images, train labels, test images, test labels) of CIFAR-10 from
    root/cifar-10-batches-bin; images (N, 32, 32, 3) uint8, labels (N,) uint8."""
    root = resolve_root("cifar10", root)
    folder = root / CIFAR10_FOLDER
    names = CIFAR10_TRAIN_FILES + (CIFAR10_TEST_FILE,)
    missing = [name for name in names if not (folder / name).is_file()]
    if missing:
        if not download:
            raise _missing_error("cifar10", folder, missing)
        download_dataset("cifar10", root, verify=verify)
    train = [read_cifar_batch(folder / name) for name in CIFAR10_TRAIN_FILES]
    x_test, y_test = read_cifar_batch(folder / CIFAR10_TEST_FILE)
    x_train = np.concatenate([images for images, _ in train])
    y_train = np.concatenate([labels for _, labels in train])
    return x_train, y_train, x_test, y_test
