"""Write a model's kernels as a standalone module (numpy + numba only).

The generated kernel module already carries a small NumPy-level API
(``load_weights``, ``train_epoch``, ``predict``, ``evaluate``,
``loss_and_grads``); exporting writes that same source, with a usage note,
to a file of the user's choice, and optionally the current weights next to
it. The exported file never imports sympy or symgrad.
"""

from __future__ import annotations

import os

from symgrad.codegen.atomic import write_user_file

__all__ = ["export_source", "USAGE"]

USAGE = '''
# ---------------------------------------------------------------------------
# Usage (exported by symgrad; needs only numpy and numba):
#
#     import trainer
#     trainer.load_weights("weights.npz")          # names/shapes as PARAM_NAMES/SHAPES
#     loss, acc = trainer.train_epoch(X, Y, batch_size=32, seed=0)  # hyper: HYPER_DEFAULT
#     P = trainer.predict(X)                       # Y: (n, OUTPUT_DIM) target rows
#
# Import it as a module (import, or importlib.import_module with its folder on sys.path):
# loaded by importlib.util.spec_from_file_location without an entry in sys.modules, its
# kernels compile the first time, but Numba's disk cache cannot load them in the next
# process (ModuleNotFoundError: '<dynamic>').
# ---------------------------------------------------------------------------
'''


def export_source(source: str, path: str | os.PathLike, hyper: tuple[float, ...] = ()) -> str:
    """Write ``source`` plus the usage note to ``path`` atomically; returns the path.

    ``hyper`` (the optimizer's hyperparameter values) becomes the module's
    ``HYPER_DEFAULT`` so ``train_epoch`` works without naming them.
    """
    path = os.fspath(path)
    if not path.endswith(".py"):
        raise ValueError(f"export path must end in .py (it is imported as a module), got {path!r}")
    text = source + USAGE
    if hyper:
        text += f"HYPER_DEFAULT = {tuple(float(h) for h in hyper)!r}\n"
    # The user's file: the umask's mode (not the cache's 0600), stale temporaries cleaned.
    write_user_file(path, lambda handle: handle.write(text.encode("utf-8")), "export", ".py")
    return path
