"""The canonical keypoint layout (paper section 4.2, appendix B figure 6).

The paper uses 73 points: 8 upper body, 19 face, 23 per hand. It does not publish which ones,
so the choice below is our documented proposal:

- body (8): nose, neck, right shoulder, right elbow, right wrist, left shoulder, left elbow,
  left wrist. This is exactly the upper-body part of OpenPose BODY_25 and of the Progressive
  Transformers PHOENIX14T skeletons, so those sources map without interpolation. The nose is
  kept as the head anchor (the paper drops the nose from the *face* part, not the head).
- face (19): the non-manual channels sign languages use, and nothing of the face outline:
  eyebrows (outer, middle, inner per side: 6), eye corners (outer, inner per side: 4),
  upper eyelid middle per side (2), mouth corners (2), outer upper/lower lip middle (2),
  inner upper/lower lip middle (2), chin (1). In dlib-68 / OpenPose face numbering:
  17, 19, 21, 22, 24, 26 | 36, 39, 42, 45 | 38, 44 (approximate lid middles) | 48, 54 | 51, 57 |
  62, 66 | 8. Sources with MediaPipe's face mesh map by the mesh indices in `MEDIAPIPE_FACE`.
- each hand (23): the 21 hand joints in OpenPose/MediaPipe order (wrist; thumb 1-4; index 5-8;
  middle 9-12; ring 13-16; pinky 17-20), then two derived points that summarize the handshape:
  the palm centre (mean of the wrist and the five finger bases 1, 5, 9, 13, 17) and the
  fingertip centroid (mean of tips 4, 8, 12, 16, 20). Their distance opens and closes with the
  hand, which is the subtle motion APW is meant to weight up. A derived point is present only
  when every point it is made from is present.

"Left" and "right" are the signer's own. Parts a source lacks (PHOENIX14T skeletons have no
face) are kept as points with a False mask, never as silent zeros.
"""

from __future__ import annotations

from dataclasses import dataclass, field

BODY_NAMES = (
    "nose", "neck", "right_shoulder", "right_elbow", "right_wrist",
    "left_shoulder", "left_elbow", "left_wrist",
)
FACE_NAMES = (
    "right_brow_outer", "right_brow_middle", "right_brow_inner",
    "left_brow_inner", "left_brow_middle", "left_brow_outer",
    "right_eye_outer", "right_eye_inner", "left_eye_inner", "left_eye_outer",
    "right_upper_lid", "left_upper_lid",
    "mouth_right", "mouth_left", "upper_lip_outer", "lower_lip_outer",
    "upper_lip_inner", "lower_lip_inner", "chin",
)
HAND_JOINT_NAMES = (
    "wrist",
    "thumb_1", "thumb_2", "thumb_3", "thumb_4",
    "index_1", "index_2", "index_3", "index_4",
    "middle_1", "middle_2", "middle_3", "middle_4",
    "ring_1", "ring_2", "ring_3", "ring_4",
    "pinky_1", "pinky_2", "pinky_3", "pinky_4",
)
HAND_DERIVED_NAMES = ("palm_centre", "fingertip_centroid")
HAND_NAMES = HAND_JOINT_NAMES + HAND_DERIVED_NAMES

# Which source joints (0-20 of a 21-joint hand) each derived point averages.
PALM_CENTRE_FROM = (0, 1, 5, 9, 13, 17)
FINGERTIP_CENTROID_FROM = (4, 8, 12, 16, 20)

# dlib-68 (+2 pupils = OpenPose face 70) indices of FACE_NAMES, in order.
DLIB_FACE = (17, 19, 21, 22, 24, 26, 36, 39, 42, 45, 38, 44, 48, 54, 51, 57, 62, 66, 8)
# MediaPipe face-mesh (468) indices of FACE_NAMES, in order. The subject's right side is the
# mesh's "right" (indices 33, 133, 70, ... lie on the image's left for a frontal signer).
MEDIAPIPE_FACE = (70, 105, 107, 336, 334, 300, 33, 133, 362, 263, 159, 386, 61, 291, 0, 17, 13, 14, 152)

# 21-joint hand skeleton: each finger is a chain from the wrist.
_HAND_EDGES = tuple(
    (a, b)
    for finger in range(5)
    for a, b in zip((0,) + tuple(range(1 + 4 * finger, 4 + 4 * finger)), range(1 + 4 * finger, 5 + 4 * finger))
) + ((21, 0), (21, 5), (21, 9), (21, 13), (21, 17), (22, 21))


@dataclass(frozen=True)
class Layout:
    """A keypoint layout: point names, named parts, anchor indices and skeleton edges."""

    name: str
    names: tuple[str, ...]
    parts: dict[str, tuple[int, ...]]  # part name -> point indices, parts are disjoint
    left_wrist: int  # index of the left hand's own wrist joint (the hand part's anchor)
    right_wrist: int
    left_shoulder: int
    right_shoulder: int
    edges: tuple[tuple[int, int], ...] = field(repr=False)  # undirected, (child, parent)

    @property
    def num_points(self) -> int:
        return len(self.names)

    def index(self, name: str) -> int:
        return self.names.index(name)

    def part_of(self, point: int) -> str:
        for part, indices in self.parts.items():
            if point in indices:
                return part
        raise KeyError(point)


def _canonical() -> Layout:
    names = (
        tuple(f"body.{n}" for n in BODY_NAMES)
        + tuple(f"face.{n}" for n in FACE_NAMES)
        + tuple(f"left_hand.{n}" for n in HAND_NAMES)
        + tuple(f"right_hand.{n}" for n in HAND_NAMES)
    )
    body = tuple(range(0, 8))
    face = tuple(range(8, 27))
    left = tuple(range(27, 50))
    right = tuple(range(50, 73))
    nose, neck, rsh, rel, rwr, lsh, lel, lwr = body
    f = {n: face[i] for i, n in enumerate(FACE_NAMES)}
    edges: list[tuple[int, int]] = [
        (nose, neck), (rsh, neck), (rel, rsh), (rwr, rel), (lsh, neck), (lel, lsh), (lwr, lel),
    ]
    # Face: brows as chains, eyes as corner-lid triangles, the mouth as two rings, all hung
    # on the nose (head anchor) so the graph is one connected component.
    edges += [
        (f["right_brow_outer"], f["right_brow_middle"]), (f["right_brow_middle"], f["right_brow_inner"]),
        (f["left_brow_outer"], f["left_brow_middle"]), (f["left_brow_middle"], f["left_brow_inner"]),
        (f["right_brow_inner"], nose), (f["left_brow_inner"], nose),
        (f["right_eye_outer"], f["right_upper_lid"]), (f["right_upper_lid"], f["right_eye_inner"]),
        (f["left_eye_outer"], f["left_upper_lid"]), (f["left_upper_lid"], f["left_eye_inner"]),
        (f["right_eye_inner"], nose), (f["left_eye_inner"], nose),
        (f["mouth_right"], f["upper_lip_outer"]), (f["upper_lip_outer"], f["mouth_left"]),
        (f["mouth_left"], f["lower_lip_outer"]), (f["lower_lip_outer"], f["mouth_right"]),
        (f["upper_lip_inner"], f["upper_lip_outer"]), (f["lower_lip_inner"], f["lower_lip_outer"]),
        (f["upper_lip_outer"], nose), (f["chin"], f["lower_lip_outer"]),
    ]
    for start, body_wrist in ((left[0], lwr), (right[0], rwr)):
        edges += [(start + a, start + b) for a, b in _HAND_EDGES]
        edges.append((start, body_wrist))  # the hand's wrist hangs on the arm's wrist
    return Layout(
        name="uniglor73",
        names=names,
        parts={"body": body, "face": face, "left_hand": left, "right_hand": right},
        left_wrist=left[0],
        right_wrist=right[0],
        left_shoulder=lsh,
        right_shoulder=rsh,
        edges=tuple(edges),
    )


CANONICAL = _canonical()
"""The 73-point layout every source is mapped into."""
assert CANONICAL.num_points == 73
