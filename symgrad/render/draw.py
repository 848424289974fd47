"""Draw a scalar `Value` graph as PNG or SVG with matplotlib only (no graphviz binary).

Like micrograd's figures: every value node is a record box ``name | data |
grad`` (unlabelled nodes named as in the derivation: `node_names`) and every
op is its own small round node between its operands and its result. Columns
run left to right by depth (each node just left of its first consumer, the
root at its longest path from a leaf); inside a column nodes are ordered by
the mean height of their operands, which keeps edges mostly straight. Layout
is computed iteratively from the topological order, so deep graphs do not
recurse (though they get wide).
"""

from __future__ import annotations

from pathlib import Path

from symgrad.definition.latex_input import check_value_label
from symgrad.definition.value import Value, op_of
from symgrad.derive.scalar import node_symbols
from symgrad.graph.scalar import graph_order
from symgrad.graph.topo import depths

SUFFIXES = (".png", ".svg")
_CHAR_W = 0.075    # inches per monospace character at 8 pt
_ROW_H = 0.62      # inches between rows
_OP_COL_W = 0.9    # inches for an op column


def node_names(root: Value) -> dict[int, str]:
    """The name of every non-constant node, keyed by ``id(node)``: the derivation's names.

    Both `draw` and `symgrad.render.scalar.derivation` name nodes with
    `symgrad.derive.scalar.node_symbols`, so an unlabelled node is ``v_1`` in
    the picture and in the printout alike.

    >>> a = Value(2.0, label="a")
    >>> sorted(node_names(a * a + a).values())
    ['a', 'v_1', 'v_2']
    """
    return {k: s.name for k, s in node_symbols(root).items()}


def _record(node: Value, names: dict[int, str]) -> str:
    label = (node.label or "const") if node._const else names[id(node)]
    return f"{label} | data {node.data:.4f} | grad {node.grad:.4f}"


def draw(root: Value, path: str | Path, dpi: int = 120) -> Path:
    """Write the computation graph of ``root`` to ``path`` (``.png`` or ``.svg``).

    Shows each node's current ``.data`` and ``.grad`` (call ``backward()``
    first to see gradients). Returns the written path; raises ValueError for
    other suffixes before any work is done.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise ValueError(
            f"draw: unsupported file suffix {path.suffix!r} in {str(path)!r}; use one of {SUFFIXES}"
        )
    order = graph_order(root)
    for n in order:   # matplotlib reads '$...$' as math: labels are checked first
        if n.label:
            check_value_label(n.label)
    names = node_names(root)
    depth = depths(order, lambda n: n.operands)
    # Every node sits just left of its first consumer ("as late as possible"),
    # so a product feeding the 5th term of a sum is drawn next to that sum.
    first_use: dict[int, int] = {}
    for n in reversed(order):
        if n is not root:
            depth[id(n)] = first_use[id(n)] - 1
        for k in n.operands:
            first_use[id(k)] = min(first_use.get(id(k), depth[id(n)]), depth[id(n)])
    ncols = 2 * max(depth.values()) + 1
    # Column 2d holds value nodes of depth d; column 2d - 1 holds their op nodes.
    columns: list[list[Value]] = [[] for _ in range(ncols)]
    for n in order:
        columns[2 * depth[id(n)]].append(n)
    y: dict[int, float] = {}
    for c in range(0, ncols, 2):
        col = columns[c]
        # Barycentric ordering: op results sit near the operands feeding them;
        # inputs placed in this column follow, in topological order.
        col.sort(key=lambda n: (0, sum(y[id(k)] for k in n.operands) / -len(n.operands))
                 if n.operands else (1, 0.0))
        for i, n in enumerate(col):
            y[id(n)] = -i * _ROW_H
    widths = [0.0] * ncols
    for c in range(ncols):
        if c % 2:
            widths[c] = _OP_COL_W
        else:
            widths[c] = max(len(_record(n, names)) for n in columns[c]) * _CHAR_W + 0.5
    xs, acc = [], 0.3
    for w in widths:
        xs.append(acc + w / 2)
        acc += w
    rows = max(len(col) for col in columns)
    width, height = acc + 0.3, rows * _ROW_H + 0.6

    # Imported here: matplotlib costs ~1 s to import and only drawing needs it.
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=dpi)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, width)
    ax.set_ylim(-height + 0.3 + _ROW_H / 2, 0.3 + _ROW_H / 2)
    ax.axis("off")
    boxes = {}
    for c in range(0, ncols, 2):
        for n in columns[c]:
            t = ax.text(xs[c], y[id(n)], _record(n, names), ha="center", va="center",
                        family="monospace", fontsize=8, zorder=2,
                        bbox={"boxstyle": "square,pad=0.35", "fc": "#eef3fb" if n.op is None
                              else "white", "ec": "black", "lw": 0.8})
            boxes[id(n)] = t
    for c in range(0, ncols, 2):
        for n in columns[c]:
            if n.op is None:
                continue
            ox, oy = xs[c - 1], y[id(n)]
            op_text = ax.text(ox, oy, op_of(n).short(n.params), ha="center", va="center",
                              fontsize=8, zorder=2,
                              bbox={"boxstyle": "circle,pad=0.3", "fc": "#fff4d6", "ec": "black",
                                    "lw": 0.8})
            _arrow(ax, (ox, oy), (xs[c], oy), op_text, boxes[id(n)])
            for k in n.operands:
                kc = 2 * depth[id(k)]
                # Edges that skip columns bow upwards instead of crossing boxes.
                bend = 0.0 if c - 1 - kc <= 1 else -0.12
                _arrow(ax, (xs[kc], y[id(k)]), (ox, oy), boxes[id(k)], op_text, bend)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format=suffix[1:])
    return path


def _arrow(ax, start, end, src, dst, bend: float = 0.0) -> None:
    from matplotlib.patches import FancyArrowPatch

    # Clipped to the two nodes' boxes so arrow heads touch the box edges.
    ax.add_patch(FancyArrowPatch(
        start, end, arrowstyle="-|>", mutation_scale=9, lw=0.7, color="#333333", zorder=3,
        connectionstyle=f"arc3,rad={bend}",
        patchA=src.get_bbox_patch(), patchB=dst.get_bbox_patch(), shrinkA=1, shrinkB=1,
    ))
