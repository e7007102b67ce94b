"""The canonical 73-point layout (paper appendix B, figure 6) as the readers rely on it."""

from collections import defaultdict

from models.layout import (
    BODY_NAMES, CANONICAL, DLIB_FACE, FACE_NAMES, FINGERTIP_CENTROID_FROM, MEDIAPIPE_FACE, PALM_CENTRE_FROM,
)


def test_counts_match_the_paper():
    parts = CANONICAL.parts
    assert CANONICAL.num_points == 73
    assert [len(parts[p]) for p in ("body", "face", "left_hand", "right_hand")] == [8, 19, 23, 23]


def test_parts_disjoint_and_covering():
    all_points = [i for idx in CANONICAL.parts.values() for i in idx]
    assert len(all_points) == len(set(all_points)) == 73
    assert sorted(all_points) == list(range(73))


def test_edges_connect_one_component():
    adjacency = defaultdict(set)
    for a, b in CANONICAL.edges:
        assert 0 <= a < 73 and 0 <= b < 73 and a != b
        adjacency[a].add(b)
        adjacency[b].add(a)
    seen, stack = {0}, [0]
    while stack:
        for n in adjacency[stack.pop()] - seen:
            seen.add(n)
            stack.append(n)
    assert seen == set(range(73))


def test_anchor_indices_and_face_tables():
    assert CANONICAL.names[CANONICAL.left_shoulder] == "body.left_shoulder"
    assert CANONICAL.names[CANONICAL.right_shoulder] == "body.right_shoulder"
    assert CANONICAL.names[CANONICAL.left_wrist] == "left_hand.wrist"
    assert CANONICAL.names[CANONICAL.right_wrist] == "right_hand.wrist"
    assert len(DLIB_FACE) == len(MEDIAPIPE_FACE) == len(FACE_NAMES) == 19
    assert len(set(DLIB_FACE)) == 19 and max(DLIB_FACE) < 70
    assert len(set(MEDIAPIPE_FACE)) == 19 and max(MEDIAPIPE_FACE) < 468
    assert len(BODY_NAMES) == 8
    assert PALM_CENTRE_FROM == (0, 1, 5, 9, 13, 17) and FINGERTIP_CENTROID_FROM == (4, 8, 12, 16, 20)
