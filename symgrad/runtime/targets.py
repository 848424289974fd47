"""Validate and shape inputs and targets before any numeric work.

Used by the NumPy reference and the Numba trainer alike, so both reject the
same bad data with the same message. The checks themselves live in
`symgrad.codegen.checks`, whose source every generated (and exported) kernel
module carries too; these are their runtime names.

>>> import numpy as np
>>> one_hot(np.array([0, 2]), 3)
array([[1., 0., 0.],
       [0., 0., 1.]])
>>> prepare_targets(np.array([1, 5]), 3, "rows")
Traceback (most recent call last):
...
symgrad.definition.errors.InputShapeError: class labels must lie in [0, 3): got 5 at row 1
>>> prepare_targets(np.array([True, False]), 2, "rows")   # bool labels are classes 1 and 0
array([[0., 1.],
       [1., 0.]])
"""

from __future__ import annotations

from symgrad.codegen.checks import as_dtype, check_inputs, check_targets, one_hot

__all__ = ["as_dtype", "one_hot", "prepare_inputs", "prepare_targets"]

# One implementation, two names: the runtime's historical ones.
prepare_inputs = check_inputs
prepare_targets = check_targets
