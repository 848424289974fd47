"""Iterative topological order over any DAG, given a children function.

Recursion would overflow Python's stack on deep graphs (micrograd's recursive
``build_topo`` fails on a few thousand chained nodes); an explicit stack works
on chains of any length. Nodes are tracked by identity, so node classes need
not be hashable and may define ``__eq__`` freely.

>>> kids = {"L": ["d", "f"], "d": ["e", "c"], "e": ["a", "b"]}
>>> topological_order("L", lambda n: kids.get(n, ()))
['a', 'b', 'e', 'c', 'd', 'f', 'L']
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

N = TypeVar("N")


class CycleError(ValueError):
    """The graph handed to `topological_order` contains a cycle."""


def topological_order(
    roots: N | Iterable[N],
    children: Callable[[N], Iterable[N]],
    *,
    many: bool = False,
) -> list[N]:
    """Every node reachable from ``roots``, each after all of its children.

    ``roots`` is one node, or (with ``many=True``) an iterable of nodes. The
    order is a depth-first post-order: deterministic for a given graph.
    Raises `CycleError` naming the node that closes a cycle.
    """
    starts = list(roots) if many else [roots]
    order: list[N] = []
    done: set[int] = set()
    on_path: set[int] = set()
    for start in starts:
        if id(start) in done:
            continue
        # Each frame: (node, iterator over its children). A node is emitted
        # when its iterator is exhausted, i.e. after all of its children.
        stack: list[tuple[N, object]] = [(start, iter(children(start)))]
        on_path.add(id(start))
        while stack:
            node, it = stack[-1]
            for child in it:  # type: ignore[attr-defined]
                cid = id(child)
                if cid in done:
                    continue
                if cid in on_path:
                    raise CycleError(f"graph has a cycle through node {child!r}")
                on_path.add(cid)
                stack.append((child, iter(children(child))))
                break
            else:
                stack.pop()
                on_path.discard(id(node))
                done.add(id(node))
                order.append(node)
    return order


def depths(order: list[N], children: Callable[[N], Iterable[N]]) -> dict[int, int]:
    """Longest distance from a leaf for each node (by ``id``), given a topological order.

    >>> kids = {"L": ["d", "f"], "d": ["e", "c"], "e": ["a", "b"]}
    >>> ch = lambda n: kids.get(n, ())
    >>> order = topological_order("L", ch)
    >>> {n: depths(order, ch)[id(n)] for n in ("a", "e", "f", "L")}
    {'a': 0, 'e': 1, 'f': 0, 'L': 3}
    """
    depth: dict[int, int] = {}
    for node in order:
        depth[id(node)] = max((depth[id(c)] + 1 for c in children(node)), default=0)
    return depth
