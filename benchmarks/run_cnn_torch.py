"""PyTorch CPU eager: nn.Conv2d, nn.MaxPool2d / nn.AvgPool2d, nn.Flatten, nn.Linear,
F.cross_entropy and a manual in-place SGD step."""

from __future__ import annotations

import os

import numpy as np
import torch
from cnn_setup import CnnProblem, param_layers
from torch import nn
from torch.nn import functional as F  # noqa: N812

# As run_torch.py: one intra-op thread per core unless bench_cnn.py --threads caps the pools.
torch.set_num_threads(int(os.environ.get("BENCH_THREADS", os.cpu_count() or 1)))


class TorchCnnTrainer:
    """The same CNN in eager PyTorch; dense weights transposed to PyTorch's (out, in)."""

    name = "torch"

    def __init__(self, problem: CnnProblem) -> None:
        self.p = problem
        dt = getattr(torch, problem.dtype.name)
        names = param_layers(problem.size)
        self.named: dict[str, nn.Module] = {}
        layers: list[nn.Module] = []
        for i, spec in enumerate(problem.size.layers):
            kind = spec[0]
            if kind == "conv":
                layer = nn.Conv2d(spec[1], spec[2], spec[3], padding=spec[4], dtype=dt)
            elif kind == "dense":
                layer = nn.Linear(spec[1], spec[2], dtype=dt)
            elif kind == "relu":
                layer = nn.ReLU()
            elif kind == "maxpool":
                layer = nn.MaxPool2d(spec[1])
            elif kind == "avgpool":
                layer = nn.AvgPool2d(spec[1])
            else:
                layer = nn.Flatten()
            if i in names:
                W = problem.params[f"{names[i]}.W"]
                with torch.no_grad():
                    layer.weight.copy_(torch.from_numpy(W if kind == "conv" else W.T.copy()))
                    layer.bias.copy_(torch.from_numpy(problem.params[f"{names[i]}.b"]))
                self.named[names[i]] = layer
            layers.append(layer)
        self.model = nn.Sequential(*layers)
        self.params = list(self.model.parameters())
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
                for q in params:
                    q.add_(q.grad, alpha=-lr)
                total += loss.detach()
        return float(total) / len(self.batches)

    def weights(self) -> dict[str, np.ndarray]:
        out = {}
        for name, layer in self.named.items():
            W = layer.weight.detach().numpy()
            out[f"{name}.W"] = W.copy() if name.startswith("conv") else W.T.copy()
            out[f"{name}.b"] = layer.bias.detach().numpy().copy()
        return out
