"""Read training data for ``symgrad train``: a CSV table or an .npz archive, checked cell by cell.

CSV: one header row of column names, then numbers; ``--target`` names the
target column (default: the last one). NPZ: arrays ``X`` and ``y`` (or the
array ``--target`` names); pickled objects are refused. Every problem is a
`DataFileError` naming the file, row, column or array.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

__all__ = ["DataFileError", "load_data"]


class DataFileError(ValueError):
    """A data file that cannot be read as a numeric table."""


def _number(cell: str, path: Path, row: int, column: str) -> float:
    try:
        value = float(cell)
    except ValueError:
        raise DataFileError(f"{path}: row {row}, column {column!r}: {cell.strip()!r} is not a "
                            "number") from None
    if not math.isfinite(value):
        raise DataFileError(f"{path}: row {row}, column {column!r}: {cell.strip()!r} is not "
                            "finite")
    return value


def _load_csv(path: Path, target: str | None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        try:
            rows = list(csv.reader(handle))
        except (csv.Error, UnicodeDecodeError) as err:
            raise DataFileError(f"{path}: not a readable CSV file ({err})") from None
    rows = [r for r in rows if any(cell.strip() for cell in r)]
    if len(rows) < 2:
        raise DataFileError(f"{path}: needs a header row and at least one data row, "
                            f"found {len(rows)} row(s)")
    header = [name.strip() for name in rows[0]]
    if len(header) < 2:
        raise DataFileError(f"{path}: needs at least two columns (features and a target), "
                            f"header is {header}")
    name = target if target is not None else header[-1]
    if name not in header:
        raise DataFileError(f"{path}: no column {name!r} for --target; columns: {header}")
    table = np.empty((len(rows) - 1, len(header)))
    for i, row in enumerate(rows[1:], start=2):   # row numbers as a text editor shows them
        if len(row) != len(header):
            raise DataFileError(f"{path}: row {i} has {len(row)} fields, the header has "
                                f"{len(header)}")
        table[i - 2] = [_number(cell, path, i, col) for cell, col in zip(row, header,
                                                                          strict=True)]
    t = header.index(name)
    features = [c for j, c in enumerate(header) if j != t]
    return np.delete(table, t, axis=1), table[:, t], features


def _load_npz(path: Path, target: str | None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    try:
        archive = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as err:
        raise DataFileError(f"{path}: not a plain-array .npz file ({err})") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise DataFileError(f"{path}: expected an .npz archive with arrays X and y")
    ykey = target or "y"
    with archive:
        missing = [k for k in ("X", ykey) if k not in archive.files]
        if missing:
            raise DataFileError(f"{path}: no array {missing[0]!r}; arrays: {archive.files}")
        try:
            X, y = archive["X"], archive[ykey]
        except ValueError as err:
            raise DataFileError(f"{path}: {err}") from None
    for key, arr in (("X", X), (ykey, y)):
        if arr.dtype.kind not in "biuf":
            raise DataFileError(f"{path}: array {key!r} has dtype {arr.dtype}, expected numbers")
    if X.ndim not in (2, 4):
        raise DataFileError(f"{path}: array 'X' must be 2-d (rows, features) or, for an "
                            f"image network, 4-d (n, C, H, W); got {X.shape}")
    if y.ndim == 0 or y.shape[0] != X.shape[0]:
        raise DataFileError(f"{path}: array {ykey!r} has {y.shape[0] if y.ndim else 'no'} rows "
                            f"{y.shape}, array 'X' {X.shape[0]} {X.shape}: one target per "
                            "row of X is needed")
    return X.astype(np.float64), y, [f"x{i}" for i in range(int(np.prod(X.shape[1:])))]


def load_data(path: str | Path, target: str | None = None
              ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(X, y, feature names) from ``path`` (.csv or .npz)."""
    path = Path(path)
    if not path.is_file():
        raise DataFileError(f"{path}: no such data file")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return _load_csv(path, target)
    if suffix == ".npz":
        return _load_npz(path, target)
    raise DataFileError(f"{path}: unknown data format {suffix!r}; use .csv or .npz")
