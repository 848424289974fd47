"""Write generated kernel source to a content-addressed file and import it.

Numba's on-disk cache (``@njit(cache=True)``) keys compiled code by the
source *file* and its timestamp. Code built with ``exec`` has no file, so it
can never be cached (a known pain point of exec-based generators). Here each
generated module is written once to ``<cache dir>/<name>_<hash>.py`` where
the hash covers the source and the versions of Python, NumPy, Numba and
symgrad; the file is never rewritten, so its timestamp is stable and a second
process importing it loads the machine code from ``__pycache__`` instead of
compiling.

The cache folder, its trust checks (private, owned by the user, else a
private temporary cache with one `CacheWarning`) and the removal of damaged
entries are stage-neutral and live in `symgrad.store.folder`: the derive stage
keeps its derivations in the same folder. They are re-exported here
(`cache_dir`, `CacheWarning`, `quarantine`, `atomic_write`, `ENV_VAR`) for code
written against this module.

Repair. A damaged entry is never fatal twice: a kernel file whose bytes differ
from its source (truncated, invalid UTF-8) is rewritten; a module that fails to
import from its compiled files gets them removed and is imported again; a
Numba index or data file that fails to load is removed and the function
compiled afresh. Each says so once in a `CacheWarning`.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import platform
import sys
from pathlib import Path
from types import ModuleType

import numpy as np

from symgrad._version import __version__
from symgrad.store.atomic import atomic_write
from symgrad.store.folder import (
    ENV_VAR,
    CacheWarning,
    cache_dir,
    distrust_current_root,
    quarantine,
    warn_once,
)

__all__ = ["cache_dir", "source_key", "module_path", "module_name", "load_source",
           "atomic_write", "quarantine", "CacheWarning", "ENV_VAR"]

_LOADED: dict[str, ModuleType] = {}


def _versions() -> str:
    import numba  # imported here: `import symgrad` should not pay for Numba

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


def _store(source: str, stem: str) -> Path:
    """The cache file holding exactly ``source``: written if absent, rewritten if damaged."""
    data = source.encode("utf-8")
    for _attempt in range(2):
        path = module_path(source, stem)
        try:
            if path.read_bytes() == data:
                return path
            # Content-addressed: different bytes under this name can only be damage.
            quarantine(path, "its content does not match its hash")
        except FileNotFoundError:
            pass
        except OSError as err:   # e.g. a folder or an unreadable file in its place
            quarantine(path, f"unreadable: {err.strerror or err}")
        try:
            atomic_write(path, data)
            return path
        except OSError as err:
            # A folder that passed the checks can still refuse writes (read-only
            # file system, full disk): use the private fallback from now on.
            distrust_current_root(f"could not be written ({err.strerror or err})")
    raise OSError(f"symgrad: cannot write the kernel cache file {path}")  # pragma: no cover


def _compiled_files(path: Path) -> list[Path]:
    """The ``.pyc`` and Numba ``.nbi``/``.nbc`` files of the module at ``path``."""
    folder = path.parent / "__pycache__"
    try:
        return [folder / name for name in os.listdir(folder)
                if name.startswith(path.stem + ".")]
    except OSError:
        return []


def _import(name: str, path: Path) -> ModuleType:
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
    return module


def _healing_loader(load, index: Path, data_glob: str, path: Path):
    """``load`` (a Numba ``load_overload``) that removes a damaged entry and reports a miss."""

    def load_overload(sig, target_context):
        try:
            return load(sig, target_context)
        except Exception as err:  # noqa: BLE001 - any failure to load: the entry is damaged
            for damaged in (index, *index.parent.glob(data_glob)):
                damaged.unlink(missing_ok=True)
            warn_once((str(index), "numba"),
                       f"symgrad: damaged Numba cache entry {index} of {path.name} "
                       f"({type(err).__name__}: {err}); removed, compiling again")
            return None

    return load_overload


def _guard_numba_cache(module: ModuleType, path: Path) -> None:
    """Make every cached Numba function of ``module`` heal a damaged index or data file.

    Numba reads its cache lazily: ``Dispatcher.compile(sig)`` calls
    ``self._cache.load_overload(sig, ctx)`` at the first call with new argument
    types (also when another kernel's compilation types a call to it), and that
    one method unpickles the ``.nbi`` index and the ``.nbc`` data. A truncated
    or random file raises there (EOFError, UnpicklingError, ...) on every run,
    so that method is the narrowest place to catch it: the function's index and
    data files are removed and ``None`` ("not cached") returned, so Numba
    compiles and saves a fresh entry (``save_overload`` rereads the index, which
    is why the files must go, not just be skipped). ``_cache_file`` is Numba
    internals (checked on 0.68); without it the guard is simply not
    installed.
    """
    from numba.core.dispatcher import Dispatcher

    for obj in vars(module).values():
        cache = getattr(obj, "_cache", None) if isinstance(obj, Dispatcher) else None
        files = getattr(cache, "_cache_file", None)
        index = getattr(files, "_index_path", None)
        pattern = getattr(files, "_data_name_pattern", None)
        if index is None or pattern is None or getattr(cache, "_symgrad_guard", False):
            continue
        cache.load_overload = _healing_loader(cache.load_overload, Path(index),
                                              pattern.replace("{number:d}", "*"), path)
        cache._symgrad_guard = True


def load_source(source: str, stem: str = "kernels") -> ModuleType:
    """Import generated ``source`` from its cache file, writing the file if new.

    The same source in the same process returns the same module object. A
    damaged cache entry is repaired (see the module docstring), never fatal.
    """
    key = f"{stem}_{source_key(source)}"
    if key in _LOADED:
        return _LOADED[key]
    path = _store(source, stem)
    name = module_name(source, stem)
    try:
        module = _import(name, path)
    except Exception as err:
        compiled = _compiled_files(path)
        if not compiled:
            raise   # nothing cached to blame: a real error in the source
        for file in compiled:
            file.unlink(missing_ok=True)
        module = _import(name, path)   # a second failure is real: raised as it is
        warn_once((str(path), "import"),
                   f"symgrad: damaged compiled cache files for {path} "
                   f"({type(err).__name__}: {err}); removed {len(compiled)} file(s) and "
                   "imported from source")
    _guard_numba_cache(module, path)
    _LOADED[key] = module
    return module
