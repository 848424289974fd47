"""Training animations (GIF): a scalar graph step by step, a network epoch by epoch.

`animate_training` is the lecture notes' "training simulation": gradient
descent on a scalar `Value` graph, one frame per step, each frame the graph as
`symgrad.draw` lays it out (every node ``label | data | grad``) under a title
with the step's loss and the update ``new = old - lr * grad`` of every
parameter. The graph is re-evaluated in place after each update, so the
frames show the same nodes with their forward values and gradients changing.

`animate_network_training` trains a compiled `Model` on 2-D inputs and draws,
per epoch, the loss curve so far beside the decision boundary of that epoch's
weights.

Both write the GIF with matplotlib's Pillow writer and return an
`Animation` record holding every frame's title and numbers.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from symgrad.definition.value import ScalarDomainError, Value, op_of
from symgrad.graph.scalar import graph_order

__all__ = ["Animation", "animate_network_training", "animate_training", "recompute"]


@dataclass
class Animation:
    """What an animation shows: the GIF's path and, per frame, its title and loss."""

    path: Path
    titles: list[str] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)

    @property
    def frames(self) -> int:
        """Number of frames written."""
        return len(self.titles)


def _check_path(path: str | Path) -> Path:
    path = Path(path)
    if path.suffix.lower() != ".gif":
        raise ValueError(f"animation file {str(path)!r} must end in .gif")
    return path


def _check_positive(value: object, what: str, kind: type = int) -> None:
    ok = isinstance(value, kind | int) and not isinstance(value, bool) and value > 0
    if not ok or (isinstance(value, float) and not math.isfinite(value)):
        raise ValueError(f"{what} must be a positive {kind.__name__}, got {value!r}")


def recompute(root: Value) -> float:
    """Re-run the forward pass of ``root``'s graph in place; return the new ``root.data``.

    Raises `ScalarDomainError` naming the node if an op leaves its domain.

    >>> a = Value(2.0, label="a"); y = a * a + 1
    >>> a.data = 3.0
    >>> recompute(y)
    10.0
    """
    for node in graph_order(root):
        if node.op is None:
            continue
        op = op_of(node)
        data = tuple(c.data for c in node.operands)
        if not op.check_domain(data, node.params):
            raise ScalarDomainError(f"node {node.label or node.op!r}: operand values {data} "
                                    f"left the domain of {node.op} ({op.domain}) during training")
        out = float(op.forward(data, node.params))
        if not math.isfinite(out):
            raise ScalarDomainError(f"node {node.label or node.op!r} became {out!r} "
                                    "during training (lower the learning rate)")
        node.data = out
    return root.data


def _default_params(root: Value) -> list[Value]:
    return [n for n in graph_order(root) if n.op is None and not n._const]


def _num(x: float) -> str:
    return f"{x:.4g}"


def _padded(images: list[np.ndarray]) -> list[np.ndarray]:
    # draw() sizes each picture to its longest record; frames of a GIF share one size.
    h = max(im.shape[0] for im in images)
    w = max(im.shape[1] for im in images)
    out = []
    for im in images:
        canvas = np.ones((h, w, im.shape[2]), dtype=im.dtype)
        canvas[:im.shape[0], :im.shape[1]] = im
        out.append(canvas)
    return out


def animate_training(root: Value, path: str | Path, params: Sequence[Value] | None = None,
                     steps: int = 5, lr: float = 0.1, fps: float = 1.0,
                     dpi: int = 80) -> Animation:
    """Gradient descent on the scalar loss ``root``, one GIF frame per step.

    Frame k (k = 1..steps) shows the graph after the forward pass and
    ``backward`` at the k-th weights, titled with the loss and each
    parameter's update ``new = old - lr * grad``; the last frame shows the
    weights after the final update. ``params`` (default: every input leaf)
    are changed in place, as training does. Returns the `Animation`.
    """
    path = _check_path(path)
    if not isinstance(root, Value):
        raise TypeError(f"animate_training needs a Value (the loss), got {root!r}")
    _check_positive(steps, "animate_training: steps")
    _check_positive(lr, "animate_training: lr", float)
    _check_positive(fps, "animate_training: fps", float)
    in_graph = {id(n) for n in graph_order(root)}
    params = _default_params(root) if params is None else list(params)
    for i, p in enumerate(params):
        if not isinstance(p, Value) or id(p) not in in_graph or p.op is not None or p._const:
            raise ValueError(f"animate_training: params[{i}] = {p!r} is not an input leaf "
                             "of the loss's graph")
    if not params:
        raise ValueError("animate_training: the graph has no input leaf to train")

    from matplotlib.image import imread

    from symgrad.render.draw import draw

    names = [p.label or f"p{i + 1}" for i, p in enumerate(params)]
    anim = Animation(path=path)
    images = []
    with tempfile.TemporaryDirectory(prefix="symgrad-anim-") as tmp:
        for k in range(steps + 1):
            loss = recompute(root)
            root.backward()
            if k < steps:
                updates = [(p.data, p.grad, p.data - lr * p.grad) for p in params]
                lines = [f"{n} = {_num(old)} - {lr:g}*({_num(g)}) = {_num(new)}"
                         for n, (old, g, new) in zip(names, updates, strict=True)]
                title = f"step {k + 1} of {steps}: loss = {_num(loss)}; update new = old - lr*grad"
            else:
                lines, title = [], f"after {steps} steps: loss = {_num(loss)}"
            anim.titles.append("\n".join([title, *lines]))
            anim.losses.append(loss)
            images.append(imread(draw(root, Path(tmp) / f"frame{k}.png", dpi=dpi)))
            if k < steps:
                for p, (_, _, new) in zip(params, updates, strict=True):
                    p.data = new
    _write_gif(path, _padded(images), anim.titles, fps, dpi)
    return anim


def _write_gif(path: Path, images: list[np.ndarray], titles: list[str], fps: float,
               dpi: int) -> None:
    from matplotlib.animation import PillowWriter
    from matplotlib.figure import Figure

    h, w = images[0].shape[:2]
    title_rows = max(t.count("\n") + 1 for t in titles)
    top = (title_rows * 14 + 12) / dpi   # inches above the picture for the title lines
    fig = Figure(figsize=(max(w / dpi, 6.0), h / dpi + top), dpi=dpi)
    ax = fig.add_axes((0, 0, 1, (h / dpi) / (h / dpi + top)))
    ax.axis("off")
    shown = ax.imshow(images[0])
    text = fig.text(0.01, 0.995, titles[0], va="top", ha="left", family="monospace",
                    fontsize=9)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = PillowWriter(fps=fps)
    with writer.saving(fig, str(path), dpi):
        for image, title in zip(images, titles, strict=True):
            shown.set_data(image)
            text.set_text(title)
            writer.grab_frame()


def animate_network_training(model, X: object, y: object, path: str | Path, epochs: int = 10,
                             batch_size: int = 32, seed: int = 0, fps: float = 2.0,
                             dpi: int = 80, resolution: int = 60) -> Animation:
    """Train ``model`` (2-D inputs) and animate, per epoch, the loss curve and decision boundary.

    Training runs `Model.fit` with a callback that keeps each epoch's weights;
    frame k plots the loss of epochs 1..k and the model's predictions over the
    data's bounding box with those weights (the 0.5 contour for one output,
    the arg-max class for several). Returns the `Animation` (titles and losses
    are the epochs' own numbers from ``fit``).
    """
    path = _check_path(path)
    _check_positive(epochs, "animate_network_training: epochs")
    _check_positive(resolution, "animate_network_training: resolution")
    if model.plan.input_dim != 2:
        raise ValueError(f"animate_network_training draws decision boundaries in the plane: "
                         f"the model takes {model.plan.input_dim} inputs, not 2")
    Xa = np.asarray(X, dtype=np.float64)
    ya = np.asarray(y)
    if Xa.ndim != 2 or Xa.shape[1] != 2:
        raise ValueError(f"animate_network_training: X must have shape (n, 2), got {Xa.shape}")

    snapshots: list[dict[str, np.ndarray]] = []
    losses: list[float] = []

    def keep(epoch: int, logs: dict[str, float]) -> None:
        snapshots.append({k: v.copy() for k, v in model.params.items()})
        losses.append(float(logs["loss"]))

    model.fit(Xa, ya, epochs=epochs, batch_size=batch_size, seed=seed, callbacks=[keep])

    pad = 0.5
    (x0, y0), (x1, y1) = Xa.min(axis=0) - pad, Xa.max(axis=0) + pad
    gx, gy = np.meshgrid(np.linspace(x0, x1, resolution), np.linspace(y0, y1, resolution))
    grid = np.column_stack([gx.ravel(), gy.ravel()])
    labels = ya.reshape(len(Xa), -1)
    labels = labels.argmax(axis=1) if labels.shape[1] > 1 else labels[:, 0]

    from matplotlib.animation import PillowWriter
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 4), dpi=dpi)
    ax_loss, ax_map = fig.subplots(1, 2)
    anim = Animation(path=path)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = PillowWriter(fps=fps)
    with writer.saving(fig, str(path), dpi):
        for k, weights in enumerate(snapshots, start=1):
            title = f"epoch {k} of {len(snapshots)}: loss = {losses[k - 1]:.4f}"
            anim.titles.append(title)
            anim.losses.append(losses[k - 1])
            ax_loss.clear()
            ax_loss.plot(range(1, k + 1), losses[:k], "o-", color="C0")
            ax_loss.set_xlim(0.5, len(snapshots) + 0.5)
            ax_loss.set_ylim(0, max(losses) * 1.1)
            ax_loss.set_xlabel("epoch")
            ax_loss.set_ylabel(f"{model.loss_entry.name} loss")
            ax_map.clear()
            P = model.forward(grid, params=weights)
            if P.shape[1] == 1:
                ax_map.contourf(gx, gy, P[:, 0].reshape(gx.shape), levels=[0, 0.5, 1],
                                colors=["#c3d7f4", "#f4c7c3"])  # coolwarm's ends
            else:
                ax_map.contourf(gx, gy, P.argmax(axis=1).reshape(gx.shape), alpha=0.4)
            ax_map.scatter(Xa[:, 0], Xa[:, 1], c=labels, s=10, cmap="coolwarm")
            ax_map.set_title("decision boundary")
            fig.suptitle(title)
            writer.grab_frame()
    return anim
