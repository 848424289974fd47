"""PyTorch CPU eager: nn.Linear layers, F.cross_entropy, a manual in-place SGD step or
torch.optim.Adam (the same hyper-parameters and bias-corrected update as the others)."""

from __future__ import annotations

import os

import numpy as np
import torch
from mlp_setup import ADAM, Problem
from torch import nn
from torch.nn import functional as F  # noqa: N812

# One intra-op thread per core, like the other frameworks' BLAS, unless bench_mlp.py --threads
# caps every framework's pools (it passes the cap as BENCH_THREADS).
torch.set_num_threads(int(os.environ.get("BENCH_THREADS", os.cpu_count() or 1)))

# The benchmark's activations as PyTorch modules; GELU exact (erf), swish = SiLU (beta 1).
ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid,
               "gelu": lambda: nn.GELU(approximate="none"), "swish": nn.SiLU}


class TorchTrainer:
    """The same MLP in eager PyTorch; weights copied from the problem (transposed to (out, in))."""

    name = "torch"

    def __init__(self, problem: Problem) -> None:
        self.p = problem
        dt = getattr(torch, problem.dtype.name)
        layers: list[nn.Module] = []
        for i, (W, b) in enumerate(problem.params):
            lin = nn.Linear(W.shape[0], W.shape[1], dtype=dt)
            with torch.no_grad():
                lin.weight.copy_(torch.from_numpy(W.T.copy()))
                lin.bias.copy_(torch.from_numpy(b.copy()))
            layers.append(lin)
            if i < len(problem.params) - 1:
                layers.append(ACTIVATIONS[problem.activation]())
        self.model = nn.Sequential(*layers)
        self.params = list(self.model.parameters())
        self.adam = None
        if problem.optimizer == "adam":
            self.adam = torch.optim.Adam(self.params, lr=ADAM["lr"],
                                         betas=(ADAM["beta1"], ADAM["beta2"]), eps=ADAM["eps"])
        X = torch.from_numpy(problem.X)
        y = torch.from_numpy(problem.labels)
        self.batches = [(X[a:b], y[a:b]) for a, b in problem.batches()]

    def epoch(self) -> float:
        lr, params, model = self.p.lr, self.params, self.model
        total = torch.zeros((), dtype=torch.float64)
        for xb, yb in self.batches:
            loss = F.cross_entropy(model(xb), yb)   # mean over the batch, like the others
            for q in params:
                q.grad = None
            loss.backward()
            with torch.no_grad():
                if self.adam is not None:
                    self.adam.step()
                else:
                    for q in params:
                        q.add_(q.grad, alpha=-lr)
                total += loss.detach()
        return float(total) / len(self.batches)

    def weights(self) -> list[tuple[np.ndarray, np.ndarray]]:
        mods = [m for m in self.model if isinstance(m, nn.Linear)]
        return [(m.weight.detach().numpy().T.copy(), m.bias.detach().numpy().copy()) for m in mods]
