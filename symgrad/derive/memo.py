"""Remember derived plans on disk, so a second process compiling the same model skips SymPy.

Deriving an activation or an output fusion costs 0.1-0.7 s of SymPy work (the
softmax + cross-entropy proof alone derives the K = 2, 3, 4 Jacobians); a
process that compiles a model it compiled before should not pay it again. Each
result is stored as JSON (`symgrad.derive.memo_format`: whitelisted SymPy
classes and plan dataclasses, never a pickle, so reading a file cannot run
code) in ``<cache dir>/derivations/<kind>_<hash>.json``, where the hash covers
the exact key (``sympy.srepr``, so symbol assumptions count), the source of
every symgrad module and the Python and SymPy versions: editing the library or
upgrading SymPy can never serve a stale derivation. Files are written
atomically and only ever read from symgrad's own (private, checked) cache
directory. An entry that cannot be read back (damaged, foreign, of the wrong
type for its kind) is removed with one `CacheWarning`, and the plan derived
again and stored afresh.

Set ``SYMGRAD_DERIVATION_CACHE=0`` to always derive from scratch.
"""

from __future__ import annotations

import hashlib
import os
import platform
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

import sympy as sp

from symgrad.derive.memo_format import MemoFormatError, decode, encode
from symgrad.derive.plan import ActivationPlan, Identity, OutputPlan

# One cache root, one atomic writer and one repair policy, shared with the kernel cache
# (in the stage-neutral `symgrad.store`: derive may not import codegen).
from symgrad.store.atomic import atomic_write
from symgrad.store.folder import cache_dir, quarantine

T = TypeVar("T")

__all__ = ["remembered", "memo_path", "EXPECTED"]

# What each kind of entry must hold (a type hint, checked on write and on read): a
# well-formed file of the wrong shape is damage too, not a TypeError in the caller.
EXPECTED: dict[str, object] = {
    "activation": tuple[ActivationPlan, tuple[Identity, ...]],
    "output": OutputPlan,
    # (plan, note) for an entry whose symbolic budget ran out (simplify.network)
    "activation_cut": tuple[tuple[ActivationPlan, tuple[Identity, ...]], str],
    "output_cut": tuple[OutputPlan, str],
}


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
    return cache_dir() / "derivations" / f"{kind}_{digest.hexdigest()[:24]}.json"


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
    expect = EXPECTED.get(kind, Any)
    path = memo_path(kind, key)
    try:
        return decode(path.read_bytes(), expect)   # type: ignore[return-value]
    except FileNotFoundError:
        pass
    except (OSError, MemoFormatError) as err:
        quarantine(path, str(err))
    result = compute()
    try:
        data = encode(result, expect)
    except (MemoFormatError, RecursionError):
        return result   # e.g. a custom formula with a function outside the whitelist
    try:
        atomic_write(path, data)
    except OSError:
        pass   # e.g. a full disk: the result is still right, only not remembered
    return result
