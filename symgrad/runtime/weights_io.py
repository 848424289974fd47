"""Save and load parameters as .npz: atomic writes, no pickles, strict shapes, finite values.

A saved file gets the mode the umask gives any new file (it is the user's file,
not the private cache); a save killed mid-write leaves a temporary file that the
next save into the same folder removes (`symgrad.codegen.atomic`).

>>> import numpy as np, os, tempfile
>>> path = os.path.join(tempfile.mkdtemp(), "w.npz")
>>> save_weights(path, {"dense0.W": np.ones((2, 3))})
>>> load_weights(path, {"dense0.W": (2, 3)})["dense0.W"].shape
(2, 3)
"""

from __future__ import annotations

import os
import zipfile
import zlib
from collections.abc import Mapping

import numpy as np

from symgrad.codegen.atomic import write_user_file

__all__ = ["save_weights", "load_weights", "WeightsFileError", "check_finite_param"]

# What a damaged archive raises from inside NumPy/zipfile: truncated (BadZipFile,
# EOFError), corrupt members (zlib.error, CRC BadZipFile), garbage headers (ValueError).
_DAMAGED = (zipfile.BadZipFile, zlib.error, EOFError, ValueError, KeyError, OSError)


class WeightsFileError(ValueError):
    """A weights file that does not fit the model (names, shapes), is damaged or not plain
    finite arrays."""


def check_finite_param(name: str, value: np.ndarray, where: str = "") -> None:
    """Raise ``ValueError`` naming ``name`` (and the first bad index) if ``value`` has NaN/inf.

    >>> check_finite_param("dense0.b", np.array([0.0, np.inf]))
    Traceback (most recent call last):
    ...
    ValueError: parameter dense0.b holds a non-finite value (inf at index (1,)); weights \
must be finite
    """
    arr = np.asarray(value)
    if arr.dtype.kind not in "fc" or np.isfinite(arr).all():   # parameters are small
        return
    bad = tuple(int(i) for i in np.argwhere(~np.isfinite(arr))[0])
    raise ValueError(f"{where}parameter {name} holds a non-finite value ({arr[bad]} at index "
                     f"{bad}); weights must be finite")


def save_weights(path: str | os.PathLike, params: Mapping[str, np.ndarray]) -> None:
    """Write ``params`` to ``path`` (.npz); a crash mid-write never leaves a partial file.

    The archive goes to a temporary file in the same directory, which is then
    renamed over ``path`` (``os.replace`` is atomic on POSIX and Windows).
    """
    arrays = {name: np.asarray(arr) for name, arr in params.items()}
    # A file object: savez must not append .npz to the temporary name.
    write_user_file(path, lambda handle: np.savez(handle, **arrays), "weights", ".npz")


def load_weights(path: str | os.PathLike, shapes: Mapping[str, tuple[int, ...]],
                 dtype: np.dtype | str | None = None) -> dict[str, np.ndarray]:
    """Read a weights file, refusing pickles, missing or extra names and shape mismatches."""
    try:
        archive = np.load(os.fspath(path), allow_pickle=False)
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        raise   # they name the path already
    except _DAMAGED as err:   # a pickle, a truncated or garbled archive, an empty file
        raise WeightsFileError(f"{path}: not a readable plain-array weights file "
                               f"({type(err).__name__}: {err})") from None
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
            except _DAMAGED as err:
                raise WeightsFileError(f"{path}: parameter {name} cannot be read "
                                       f"({type(err).__name__}: {err})") from None
            if arr.dtype.kind not in "iuf":
                raise WeightsFileError(f"{path}: parameter {name} has dtype {arr.dtype}, "
                                       "expected floats")
            if tuple(arr.shape) != tuple(shape):
                raise WeightsFileError(f"{path}: parameter {name} has shape {arr.shape}, "
                                       f"the model expects {tuple(shape)}")
            with np.errstate(over="ignore"):   # 1e300 into float32 is inf: refused below
                out[name] = np.ascontiguousarray(arr, dtype=dtype or arr.dtype)
            try:   # after the cast: a value finite in the file may overflow the model dtype
                check_finite_param(name, out[name])
            except ValueError as err:
                raise WeightsFileError(f"{path}: {err}") from None
    return out
