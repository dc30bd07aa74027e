"""Finding users' dataset files and reading raw formats (IDX) with NumPy only.

Search order for a dataset's files (first folder that holds all of them wins):
``data_root`` (a dataset option) and its standard sub-folders, then
``$ZOO_DATA_ROOT/<dataset>``, then ``data/raw/<dataset>`` (relative to the working
directory), then system folders such as Debian's ``/usr/share/datasets/<dataset>``.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from zoo.errors import DataError

ENV_ROOT = "ZOO_DATA_ROOT"

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def candidate_dirs(dataset: str, data_root: str | Path | None, subdirs: Sequence[str],
                   system: Sequence[str] = ()) -> list[Path]:
    """Folders searched for ``dataset``'s files, in order (see module docstring)."""
    roots: list[Path] = []
    if data_root is not None:
        roots.append(Path(data_root).expanduser())
    else:
        if os.environ.get(ENV_ROOT):
            roots.append(Path(os.environ[ENV_ROOT]).expanduser())
        roots.append(Path("data") / "raw")
    dirs = [root / sub for root in roots for sub in ("", *subdirs)]
    if data_root is None:
        dirs += [Path(s) for s in system]
    return dirs


def locate(dataset: str, names: dict[str, Sequence[str]], dirs: Sequence[Path], how_to: str) -> dict[str, Path]:
    """Paths of the files ``names`` (logical name → accepted file names) in the first folder holding all.

    Raises :class:`DataError` (one line: what is missing, where we looked, how to get it).
    """
    for d in dirs:
        found: dict[str, Path] = {}
        for key, options in names.items():
            hit = next((d / n for n in options if (d / n).is_file()), None)
            if hit is None:
                break
            found[key] = hit
        if len(found) == len(names):
            return found
    wanted = next(iter(names.values()))[0]
    looked = ", ".join(str(d) for d in dict.fromkeys(dirs))
    raise DataError(f"dataset {dataset!r}: files not found (e.g. {wanted}) in {looked}; {how_to}")


def read_bytes(path: Path) -> bytes:
    """File contents, transparently gunzipped when the file starts with the gzip magic."""
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise DataError(f"{path}: corrupt gzip file ({exc}); download it again") from None
    return raw


def read_idx(path: Path) -> np.ndarray:
    """Array stored in an IDX file (the MNIST family format; plain or ``.gz``).

    Header: two zero bytes, a type code (0x08 = uint8, …), the number of dimensions,
    then each dimension as a big-endian int32; the data follow in row-major order.
    """
    raw = read_bytes(path)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DataError(f"{path}: not an IDX file (bad magic number); check the file or download it again")
    ndim = raw[3]
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">i4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    offset = 4 + 4 * ndim
    n = int(np.prod(dims)) if dims else 0
    if len(raw) - offset != n * dtype.itemsize:
        raise DataError(f"{path}: IDX header says {dims} but the file holds {len(raw) - offset} data bytes; "
                        "the file is truncated or corrupt, download it again")
    return np.frombuffer(raw, dtype=dtype, count=n, offset=offset).reshape(dims).astype(dtype.newbyteorder("="))
