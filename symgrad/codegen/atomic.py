"""Atomic file writes: moved to the stage-neutral `symgrad.store.atomic`; re-exported here.

The derive stage writes its cache entries atomically too and may not import
codegen, so the writer lives in `symgrad.store`. This module keeps the old
import path (``from symgrad.codegen import atomic``) working.
"""

from symgrad.store.atomic import (
    STALE_AFTER_S,
    atomic_write,
    remove_stale_temporaries,
    umask_mode,
    write_user_file,
)

__all__ = ["atomic_write", "write_user_file", "remove_stale_temporaries", "umask_mode",
           "STALE_AFTER_S"]
