"""Write generated kernel source to a content-addressed file and import it.

Numba's on-disk cache (``@njit(cache=True)``) keys compiled code by the
source *file* and its timestamp. Code built with ``exec`` has no file, so it
can never be cached (a known pain point of exec-based generators). Here each
generated module is written once to ``<cache dir>/<name>_<hash>.py`` where
the hash covers the source and the versions of Python, NumPy, Numba and
symgrad; the file is never rewritten, so its timestamp is stable and a second
process importing it loads the machine code from ``__pycache__`` instead of
compiling.

The cache directory is ``$SYMGRAD_CACHE_DIR`` if set, else
``~/.cache/symgrad``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import platform
import sys
import tempfile
from pathlib import Path
from types import ModuleType

import numpy as np

__all__ = ["cache_dir", "source_key", "module_path", "module_name", "load_source",
           "atomic_write"]

_LOADED: dict[str, ModuleType] = {}


def cache_dir() -> Path:
    """The kernel cache directory (created on demand)."""
    root = os.environ.get("SYMGRAD_CACHE_DIR") or os.path.join(
        os.path.expanduser("~"), ".cache", "symgrad")
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _versions() -> str:
    import numba  # imported here: `import symgrad` should not pay for Numba

    from symgrad import __version__

    return "|".join([platform.python_version(), np.__version__, numba.__version__, __version__])


def source_key(source: str) -> str:
    """A short hash of ``source`` and the tool versions that compile it.

    >>> len(source_key("x = 1")) == 20 and source_key("x = 1") != source_key("x = 2")
    True
    """
    digest = hashlib.sha256((_versions() + "\n" + source).encode("utf-8"))
    return digest.hexdigest()[:20]


def module_path(source: str, stem: str = "kernels") -> Path:
    """Where ``source`` is (or will be) stored in the cache."""
    return cache_dir() / f"{stem}_{source_key(source)}.py"


def module_name(source: str, stem: str = "kernels") -> str:
    """The import name `load_source` gives ``source`` (usable in generated imports)."""
    return f"symgrad_generated_{stem}_{source_key(source)}"


def atomic_write(path: Path, data: str | bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same folder and a rename.

    A concurrent reader sees either no file or the complete file, never half.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
    try:
        if isinstance(data, str):
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(data)
        else:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load_source(source: str, stem: str = "kernels") -> ModuleType:
    """Import generated ``source`` from its cache file, writing the file if new.

    The same source in the same process returns the same module object.
    """
    path = module_path(source, stem)
    key = path.stem
    if key in _LOADED:
        return _LOADED[key]
    if not path.exists() or path.read_text(encoding="utf-8") != source:
        atomic_write(path, source)
    name = module_name(source, stem)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:  # pragma: no cover - importlib contract
        raise ImportError(f"cannot import generated kernels from {path}")
    module = importlib.util.module_from_spec(spec)
    # Registered so pickling and Numba's cache locator can find the module by name.
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    _LOADED[key] = module
    return module
