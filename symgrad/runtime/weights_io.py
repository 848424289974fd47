"""Save and load parameters as .npz: atomic writes, no pickles, strict shapes.

>>> import numpy as np, os, tempfile
>>> path = os.path.join(tempfile.mkdtemp(), "w.npz")
>>> save_weights(path, {"dense0.W": np.ones((2, 3))})
>>> load_weights(path, {"dense0.W": (2, 3)})["dense0.W"].shape
(2, 3)
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping

import numpy as np

__all__ = ["save_weights", "load_weights", "WeightsFileError"]


class WeightsFileError(ValueError):
    """A weights file that does not fit the model (names, shapes) or is not plain arrays."""


def save_weights(path: str | os.PathLike, params: Mapping[str, np.ndarray]) -> None:
    """Write ``params`` to ``path`` (.npz); a crash mid-write never leaves a partial file.

    The archive goes to a temporary file in the same directory, which is then
    renamed over ``path`` (``os.replace`` is atomic on POSIX and Windows).
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".symgrad-weights-", suffix=".npz.tmp")
    try:
        with os.fdopen(fd, "wb") as handle:   # a file object: savez must not append .npz
            np.savez(handle, **{name: np.asarray(arr) for name, arr in params.items()})
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load_weights(path: str | os.PathLike, shapes: Mapping[str, tuple[int, ...]],
                 dtype: np.dtype | str | None = None) -> dict[str, np.ndarray]:
    """Read a weights file, refusing pickles, missing or extra names and shape mismatches."""
    try:
        archive = np.load(os.fspath(path), allow_pickle=False)
    except ValueError as err:   # e.g. a pickled object array or a plain pickle file
        raise WeightsFileError(f"{path}: not a plain-array weights file ({err})") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise WeightsFileError(f"{path}: expected an .npz archive of named arrays")
    with archive:
        names = set(archive.files)
        missing = [n for n in shapes if n not in names]
        extra = sorted(names - set(shapes))
        if missing or extra:
            raise WeightsFileError(f"{path}: parameter names do not match the model: "
                                   f"missing {missing}, unexpected {extra}")
        out = {}
        for name, shape in shapes.items():
            try:
                arr = archive[name]
            except ValueError as err:
                raise WeightsFileError(f"{path}: parameter {name}: {err}") from None
            if arr.dtype.kind not in "iuf":
                raise WeightsFileError(f"{path}: parameter {name} has dtype {arr.dtype}, "
                                       "expected floats")
            if tuple(arr.shape) != tuple(shape):
                raise WeightsFileError(f"{path}: parameter {name} has shape {arr.shape}, "
                                       f"the model expects {tuple(shape)}")
            out[name] = np.ascontiguousarray(arr, dtype=dtype or arr.dtype)
    return out
