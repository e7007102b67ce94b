"""Skeleton adjacency for the graph convolutions of SignMAE's extractor (paper section 3.2).

The CTR-GC feature extractor (Chen et al., ICCV 2021) starts each graph convolution from the
physical skeleton split into three subsets, the "spatial" partitioning of ST-GCN (Yan et al.,
AAAI 2018) that CTR-GC keeps:

- self:    the point itself,
- inward:  edges followed from a child to its parent, i.e. toward the root (the neck),
- outward: the same edges followed from the parent to the child, away from the root.

Parent and child are decided by the breadth-first hop distance to the root: for an edge (a, b)
with dist(a) > dist(b), a is the child. An edge whose two ends are at the same distance (it closes
a cycle, e.g. the palm-centre to index-base edge of a hand) has no direction toward the root; like
ST-GCN's spatial strategy we put it in the self subset (both directions). On a tree every edge has
a direction and the self subset is exactly the identity.

Convention (used by models/extractor.py): A[k, i, j] is how much point i's output takes from point
j's input, y_i = sum_j A[k, i, j] x_j. Each subset is ROW-normalized: a row is divided by its
number of non-zeros, so a point averages over its neighbours in that subset (e.g. in the inward
subset a parent averages its children). Rows without neighbours stay 0.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence

import torch

from models.layout import Layout

SUBSETS = ("self", "inward", "outward")


def hop_distances(num_points: int, edges: Iterable[tuple[int, int]], root: int) -> list[int]:
    """Breadth-first hop distance of every point to `root` over the undirected edges.

    Raises ValueError when a point is not connected to the root: its direction would be undefined.
    """
    neighbours: list[list[int]] = [[] for _ in range(num_points)]
    for a, b in edges:
        neighbours[a].append(b)
        neighbours[b].append(a)
    dist = [-1] * num_points
    dist[root] = 0
    queue = deque([root])
    while queue:
        i = queue.popleft()
        for j in neighbours[i]:
            if dist[j] < 0:
                dist[j] = dist[i] + 1
                queue.append(j)
    unreachable = [i for i, d in enumerate(dist) if d < 0]
    if unreachable:
        raise ValueError(f"graph: points {unreachable} are not connected to the root {root}; expected one component")
    return dist


def _row_normalize(a: torch.Tensor) -> torch.Tensor:
    degree = a.sum(dim=-1, keepdim=True)  # (V, 1)
    return torch.where(degree > 0, a / degree.clamp(min=1e-12), torch.zeros_like(a))


def adjacency_subsets(num_points: int, edges: Sequence[tuple[int, int]], root: int) -> torch.Tensor:
    """The (3, V, V) float32 stack [self, inward, outward], each row-normalized (see module doc)."""
    if not 0 <= root < num_points:
        raise ValueError(f"graph: root {root} is outside 0..{num_points - 1}")
    edges = [(int(a), int(b)) for a, b in edges]
    for a, b in edges:
        if not (0 <= a < num_points and 0 <= b < num_points):
            raise ValueError(f"graph: edge ({a}, {b}) has a point outside 0..{num_points - 1}")
        if a == b:
            raise ValueError(f"graph: edge ({a}, {b}) is a self-loop; the self subset already holds it")
    dist = hop_distances(num_points, edges, root)
    same = torch.eye(num_points)  # (V, V)
    inward = torch.zeros(num_points, num_points)
    outward = torch.zeros(num_points, num_points)
    for a, b in edges:
        if dist[a] == dist[b]:
            same[a, b] = same[b, a] = 1.0
            continue
        child, parent = (a, b) if dist[a] > dist[b] else (b, a)
        inward[parent, child] = 1.0  # the parent takes from its child: information flows to the root
        outward[child, parent] = 1.0  # the child takes from its parent: information flows away
    return torch.stack([_row_normalize(same), _row_normalize(inward), _row_normalize(outward)])


def layout_adjacency(layout: Layout, root_name: str = "body.neck") -> torch.Tensor:
    """adjacency_subsets for a layout, rooted at the neck (index 1 in the canonical layout)."""
    return adjacency_subsets(layout.num_points, layout.edges, layout.index(root_name))
