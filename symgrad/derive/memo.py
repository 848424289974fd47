"""Remember derived plans on disk, so a second process compiling the same model skips SymPy.

Deriving an activation or an output fusion costs 0.1-0.7 s of SymPy work (the
softmax + cross-entropy proof alone derives the K = 2, 3, 4 Jacobians); a
process that compiles a model it compiled before should not pay it again. Each
result is pickled to ``<cache dir>/derivations/<kind>_<hash>.pkl``, where the
hash covers the exact key (``sympy.srepr``, so symbol assumptions count), the
source of every symgrad module and the Python and SymPy versions: editing the
library or upgrading SymPy can never serve a stale derivation. Files are
written atomically and only ever read from symgrad's own cache directory; an
unreadable file is ignored and the plan derived again.

Set ``SYMGRAD_DERIVATION_CACHE=0`` to always derive from scratch.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import platform
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import TypeVar

import sympy as sp

# One cache root and one atomic writer, shared with the kernel cache.
from symgrad.codegen.cache import atomic_write, cache_dir

T = TypeVar("T")

__all__ = ["remembered", "memo_path"]


@cache
def _library_fingerprint() -> str:
    """Hash of every symgrad source file plus the Python and SymPy versions."""
    root = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256(f"{platform.python_version()}|{sp.__version__}".encode())
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def memo_path(kind: str, key: object) -> Path:
    """The file that holds (or will hold) the result for ``key``."""
    digest = hashlib.sha256((_library_fingerprint() + "\n" + sp.srepr(key)).encode())
    return cache_dir() / "derivations" / f"{kind}_{digest.hexdigest()[:24]}.pkl"


def remembered(kind: str, key: object, compute: Callable[[], T]) -> T:
    """``compute()``, or its result from an earlier process with the same ``key``.

    >>> calls = []
    >>> def slow():
    ...     calls.append(1)
    ...     return 42
    >>> key = ("doctest", sp.Symbol("x", real=True))
    >>> memo_path("doctest", key).unlink(missing_ok=True)
    >>> remembered("doctest", key, slow), remembered("doctest", key, slow), len(calls)
    (42, 42, 1)
    >>> memo_path("doctest", key).unlink()
    """
    if os.environ.get("SYMGRAD_DERIVATION_CACHE", "1") == "0":
        return compute()
    path = memo_path(kind, key)
    try:
        with open(path, "rb") as handle:
            return pickle.load(handle)
    except FileNotFoundError:
        pass
    except Exception:   # noqa: BLE001 - a damaged or foreign file: derive again
        path.unlink(missing_ok=True)
    result = compute()
    try:
        data = pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, data)
    except (pickle.PicklingError, TypeError, AttributeError, OSError):
        pass   # e.g. a custom formula holding a Python closure, or a read-only disk
    return result
