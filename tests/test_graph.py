"""models/graph.py: spatial partitioning (self / inward / outward), row-normalized, exact values."""

import pytest
import torch

from models.graph import adjacency_subsets, hop_distances, layout_adjacency
from models.layout import CANONICAL


def test_chain_of_four_rooted_at_one_exact():
    # 0 - 1 - 2 - 3, root 1: distances 1, 0, 1, 2; children: 0 and 2 of 1, 3 of 2.
    a = adjacency_subsets(4, [(0, 1), (1, 2), (2, 3)], root=1)
    assert a.shape == (3, 4, 4) and a.dtype == torch.float32
    expected_self = torch.eye(4)
    expected_inward = torch.tensor(
        [
            [0.0, 0.0, 0.0, 0.0],
            [0.5, 0.0, 0.5, 0.0],  # the root averages its two children
            [0.0, 0.0, 0.0, 1.0],
            [0.0, 0.0, 0.0, 0.0],
        ]
    )
    expected_outward = torch.tensor(
        [
            [0.0, 1.0, 0.0, 0.0],  # each child takes its parent
            [0.0, 0.0, 0.0, 0.0],  # the root has no parent
            [0.0, 1.0, 0.0, 0.0],
            [0.0, 0.0, 1.0, 0.0],
        ]
    )
    assert torch.equal(a[0], expected_self)
    assert torch.equal(a[1], expected_inward)
    assert torch.equal(a[2], expected_outward)


def test_edge_direction_does_not_depend_on_how_the_edge_is_written():
    a = adjacency_subsets(3, [(0, 1), (1, 2)], root=0)
    b = adjacency_subsets(3, [(1, 0), (2, 1)], root=0)
    assert torch.equal(a, b)
    assert a[1, 0, 1] == 1.0 and a[2, 1, 0] == 1.0  # inward 1 -> 0, outward 0 -> 1


def test_same_distance_edge_goes_to_the_self_subset():
    # Triangle with root 0: 1 and 2 are both at distance 1, so the edge 1-2 has no direction.
    a = adjacency_subsets(3, [(1, 0), (2, 0), (1, 2)], root=0)
    assert torch.equal(a[0], torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.5, 0.5], [0.0, 0.5, 0.5]]))
    assert torch.equal(a[1], torch.tensor([[0.0, 0.5, 0.5], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]))
    assert torch.equal(a[2], torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [1.0, 0.0, 0.0]]))


@pytest.mark.parametrize(
    "edges, root, message",
    [
        ([(0, 1)], 0, "not connected"),  # point 2 is isolated
        ([(0, 1), (1, 3)], 0, "outside"),
        ([(0, 1), (1, 1), (1, 2)], 0, "self-loop"),
        ([(0, 1), (1, 2)], 5, "root"),
    ],
)
def test_bad_graphs_raise(edges, root, message):
    with pytest.raises(ValueError, match=message):
        adjacency_subsets(3, edges, root)


def test_canonical_layout_adjacency():
    a = layout_adjacency(CANONICAL)
    assert a.shape == (3, 73, 73)
    dist = hop_distances(73, CANONICAL.edges, 1)
    assert dist[1] == 0 and dist[0] == 1  # rooted at the neck; the nose hangs on it
    # Every non-root point has exactly one parent (the layout's skeleton is a tree plus palm edges).
    out_rows = a[2].sum(1)
    assert out_rows[1] == 0 and torch.allclose(out_rows[torch.arange(73) != 1], torch.ones(72))
    # Every non-empty row of every subset sums to 1 (row normalization).
    rows = a.sum(-1)
    assert torch.allclose(rows[rows > 0], torch.ones_like(rows[rows > 0]))
    # Inward and outward are the same edges in opposite directions.
    assert torch.equal(a[1] > 0, (a[2] > 0).T)
    # The 8 palm-centre to finger-base edges close cycles at equal distance: they are in "self".
    assert int((a[0] > 0).sum()) == 73 + 2 * 8
