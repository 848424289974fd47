"""Write a file atomically: a temporary file in the same folder, then one rename.

Stage-neutral (`symgrad.store`): cache entries of the derive and codegen stages
and the files the runtime and the CLI write for the user all go through here.

A reader (or a crash) sees either the old file or the complete new one, never
half. Two flavours:

- cache entries stay private to the user (mode 0600, what ``mkstemp`` gives);
- files the user asked for (saved weights, exported trainers) get the mode
  ``open()`` would give: the umask's for a new file (0644 under umask 022), the
  old mode for a file written over; a symlink is followed, not replaced.

A process killed mid-write (``kill -9``) leaves its temporary file behind. The
temporary names carry the writer's pid and host
(``.symgrad-<tag>-<pid>@<host>.<random><suffix>.tmp``), so the next write into
that folder removes the stale ones: those of a writer that is no longer
running on this host, or that nobody has written to for `STALE_AFTER_S`
seconds. A concurrent writer's file is never touched: its process is alive
and it keeps writing.
"""

from __future__ import annotations

import os
import re
import socket
import stat
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

__all__ = ["atomic_write", "write_user_file", "remove_stale_temporaries", "umask_mode",
           "STALE_AFTER_S"]

STALE_AFTER_S = 600.0   # a live writer touches its file far more often than this


def _host() -> str:
    return re.sub(r"\W", "_", socket.gethostname())[:40] or "host"


def _prefix(tag: str) -> str:
    return f".symgrad-{tag}-{os.getpid()}@{_host()}."


def _pid_running(pid: int) -> bool:
    if os.name == "nt":
        # NOTE: os.kill on Windows terminates the process for any signal but CTRL_*:
        # never probe there; the age rule alone applies.
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:   # e.g. PermissionError: it exists, owned by someone else
        return True
    return True


def remove_stale_temporaries(folder: str | os.PathLike, tag: str) -> list[str]:
    """Delete leftover ``.symgrad-<tag>-*.tmp`` files of dead or long-idle writers in ``folder``.

    Only regular files owned by the current user are considered. Returns the
    names removed.
    """
    pattern = re.compile(rf"^\.symgrad-{re.escape(tag)}-(?:(\d+)@(\w+)\.)?[^/]*\.tmp$")
    removed = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    now, here, me = time.time(), _host(), os.getpid()
    for name in names:
        match = pattern.match(name)
        if match is None:
            continue
        path = os.path.join(folder, name)
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if not stat.S_ISREG(st.st_mode) or (hasattr(os, "getuid") and st.st_uid != os.getuid()):
            continue
        pid = int(match.group(1)) if match.group(1) else None
        dead = (pid is not None and match.group(2) == here and pid != me
                and not _pid_running(pid))
        if dead or now - st.st_mtime > STALE_AFTER_S:
            try:
                os.unlink(path)
                removed.append(name)
            except OSError:
                pass
    return removed


def umask_mode(base: int = 0o666) -> int:
    """``base`` less the process umask: the mode ``open()`` gives a new file."""
    try:   # Linux reports it without the set-and-restore race of os.umask
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("Umask:"):
                    return base & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return base & ~mask


def _write(path: Path, write: Callable[[BinaryIO], None], tag: str, suffix: str,
           mode: int | None) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_prefix(tag), suffix=suffix + ".tmp")
    try:
        if mode is not None:
            os.chmod(tmp, mode)
        with os.fdopen(fd, "wb") as handle:
            write(handle)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write(path: Path, data: str | bytes, tag: str = "cache") -> None:
    """Write ``data`` (str as UTF-8) to ``path`` privately (0600) via a temporary file."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    path = Path(path)
    remove_stale_temporaries(path.parent, tag)
    _write(path, lambda handle: handle.write(raw), tag, "", None)


def write_user_file(path: str | os.PathLike, write: Callable[[BinaryIO], None], tag: str,
                    suffix: str = "") -> None:
    """Write a file the user asked for: atomically, with the mode ``open()`` would give.

    As ``open(path, "wb")`` would: a symlink is followed (its target is
    replaced, the link stays), and a file that exists keeps its permission bits;
    a new file gets the umask's mode. Stale temporaries are cleaned.
    ``write`` receives the open binary temporary file.
    """
    target = Path(os.path.realpath(os.fspath(path)))
    if not target.parent.is_dir():   # else the error would name our temporary file
        raise FileNotFoundError(f"{os.fspath(path)}: cannot write it, the folder "
                                f"{target.parent} does not exist")
    if target.is_dir():
        raise IsADirectoryError(f"{os.fspath(path)}: is a folder; give a file name")
    try:
        existing = os.stat(target)
        mode = stat.S_IMODE(existing.st_mode) if stat.S_ISREG(existing.st_mode) else umask_mode()
    except FileNotFoundError:
        mode = umask_mode()
    remove_stale_temporaries(target.parent, tag)
    _write(target, write, tag, suffix, mode)
