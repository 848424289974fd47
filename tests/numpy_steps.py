"""The NumPy path the compiled trainers are checked against: float64 reference gradients
(``model.backward``) and the optimizer's own ``step_numpy``, batch by batch."""

from __future__ import annotations

import numpy as np

from symgrad.model import compile as sg_compile


def reference_epochs(net, loss: str, opt, params, X, Y, order, batch_size: int,
                     epochs: int = 1) -> dict[str, np.ndarray]:
    """The weights after ``epochs`` epochs of ``opt.step_numpy`` from ``params``, taking
    the batches in ``order``, every gradient from the float64 reference evaluator."""
    params = {k: np.asarray(v, dtype=np.float64).copy() for k, v in params.items()}
    ref = sg_compile(net, loss=loss)   # float64 reference evaluator
    state = opt.init_state(params)
    for _ in range(epochs):
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            opt.step_numpy(params, ref.backward(X[rows], Y[rows], params)[1], state)
    return params
