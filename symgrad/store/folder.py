"""The cache folder: where it is, whether it can be trusted, and removal of damaged entries.

Stage-neutral (`symgrad.store`): the derive stage keeps its derivation memo
(``derivations/``) and its scalar backward steps (``scalar_steps/``) here, the
codegen stage its kernel modules and their compiled files (``__pycache__/``).

The cache folder is ``$SYMGRAD_CACHE_DIR`` if set, else ``~/.cache/symgrad``.

Trust. Everything in the cache is code or becomes code: the kernel modules are
imported, Python's ``.pyc`` and Numba's ``.nbi``/``.nbc`` files are unmarshalled
and unpickled, and the remembered derivations decide which gradients a kernel
computes. So the cache is trusted the way ssh trusts ``~/.ssh`` (and pip and
git their caches): the folder is created private (0700), and a cache folder or
one of its `SUBFOLDERS` that is not owned by the current user, is writable by
group or others, is not a folder or cannot be written is not used: one
`CacheWarning` names the folder and the reason, and the process uses a private
temporary cache instead (``tempfile.mkdtemp``, removed at exit). Ownership and
mode bits are checked explicitly, not only by trying to write: root can write
anywhere, yet a folder whose owner-write bit is off is read-only by the owner's
intent. (On Windows, which has no POSIX owner/mode, only the folder and
writability checks apply.)

Repair. A damaged entry is never fatal: its owner removes it with `quarantine`
(one `CacheWarning`) and builds it again.
"""

from __future__ import annotations

import atexit
import os
import shutil
import stat
import tempfile
import warnings
from pathlib import Path

__all__ = ["cache_dir", "quarantine", "warn_once", "distrust_current_root", "CacheWarning",
           "ENV_VAR", "SUBFOLDERS"]

ENV_VAR = "SYMGRAD_CACHE_DIR"
# Held to the same standard as the root. Checked in this order, and a refusal stops
# at the first problem, so no folder is created inside a root that is refused.
SUBFOLDERS = ("derivations", "__pycache__", "scalar_steps")

_REFUSED: dict[str, str] = {}      # cache root -> why it is not used (write failures)
_WARNED: set[tuple[str, str]] = set()
_FALLBACK: list[Path] = []         # the private temporary cache, made at most once


class CacheWarning(UserWarning):
    """A cache folder was refused or a damaged cache entry repaired; symgrad carried on."""


def warn_once(key: tuple[str, str], message: str) -> None:
    """Give ``message`` as a `CacheWarning` once per process for ``key`` (a folder, a reason)."""
    if key not in _WARNED:
        _WARNED.add(key)
        warnings.warn(message, CacheWarning, stacklevel=3)


def _folder_problem(folder: Path) -> str | None:
    """Why ``folder`` cannot serve as (part of) the cache, creating it private if absent."""
    try:
        folder.mkdir(mode=0o700)
        os.chmod(folder, 0o700)   # mkdir's mode passes through the umask
    except FileExistsError:
        pass
    except FileNotFoundError:
        try:   # missing parents get the ordinary mode, like ~/.cache itself
            folder.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            return f"cannot be created ({err.strerror or err})"
        return _folder_problem(folder)
    except OSError as err:
        return f"cannot be created ({err.strerror or err})"
    try:
        st = os.stat(folder)
    except OSError as err:
        return f"cannot be examined ({err.strerror or err})"
    if not stat.S_ISDIR(st.st_mode):
        return "is not a folder"
    mode = stat.S_IMODE(st.st_mode)
    if hasattr(os, "geteuid"):
        if st.st_uid != os.geteuid():
            return f"is owned by uid {st.st_uid}, not by the current user (uid {os.geteuid()})"
        if mode & 0o022:
            return f"is writable by group or others (mode {mode:04o})"
        if not mode & 0o200:
            return f"is read-only (mode {mode:04o})"
    if not os.access(folder, os.W_OK | os.X_OK):
        return "is not writable"
    return None


def _private_fallback() -> Path:
    if not _FALLBACK:
        path = Path(tempfile.mkdtemp(prefix="symgrad-cache-"))   # 0700, ours
        for sub in SUBFOLDERS:
            (path / sub).mkdir(mode=0o700)
        atexit.register(shutil.rmtree, path, ignore_errors=True)
        _FALLBACK.append(path)
    return _FALLBACK[0]


def _configured_root() -> tuple[Path, str | None]:
    configured = os.environ.get(ENV_VAR) or None
    root = configured or os.path.join(os.path.expanduser("~"), ".cache", "symgrad")
    return Path(root), configured


def _refuse(root: Path, configured: str | None, folder: Path, reason: str) -> Path:
    fallback = _private_fallback()
    origin = (f"set by {ENV_VAR}={configured!r}" if configured is not None
              else f"the default; set {ENV_VAR} to choose another")
    warn_once((str(root), "refused"),
              f"symgrad: not using the cache folder {folder} ({origin}): it {reason}; "
              f"using a private temporary cache {fallback} for this process instead")
    return fallback


def cache_dir() -> Path:
    """The cache directory: private, owned by the user, created on demand.

    A folder that fails the trust checks (see the module docstring) is replaced
    by a private temporary cache for this process, with one `CacheWarning`.
    """
    root, configured = _configured_root()
    if str(root) in _REFUSED:
        return _refuse(root, configured, root, _REFUSED[str(root)])
    for folder in (root, *(root / sub for sub in SUBFOLDERS)):
        problem = _folder_problem(folder)
        if problem is not None:
            return _refuse(root, configured, folder, problem)
    return root


def distrust_current_root(reason: str) -> None:
    """Stop using the configured root for this process (e.g. a write failed there)."""
    root, _ = _configured_root()
    _REFUSED.setdefault(str(root), reason)


def quarantine(path: Path, reason: str) -> None:
    """Remove a damaged cache entry (file or folder) and say so once; never raises."""
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
        done = "removed; it is rebuilt"
    except OSError as err:
        done = f"could not be removed ({err.strerror or err}); it is bypassed"
    warn_once((str(path), "damaged"), f"symgrad: damaged cache entry {path} ({reason}) {done}")
