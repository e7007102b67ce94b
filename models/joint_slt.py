"""Joint-SLT on keypoints: the translation baseline of tables 1 and 5 (paper section 4.3; Camgoz et
al. 2020, "Sign Language Transformers: Joint End-to-end Sign Language Recognition and Translation").

The paper runs Joint-SLT "adapted ... to work with sign keypoint inputs" (section 4.3), with the
Joint-SLT configuration of B.2 (the `paper` profile: 512 wide, 3 layers, 8 heads). Re-implemented
from Camgoz et al.'s description, not from their code:

- spatial embedding: one vector per frame, a linear layer over the frame's flattened keypoints
  (coordinates zeroed where a point is absent, plus the presence bit, so an absent point is never
  read as a point at the origin), then a normalisation and an activation as Camgoz et al.'s spatial
  embedding has (theirs sits on CNN features; LayerNorm and ReLU are our choice). No temporal
  downsampling: the encoder has one step per frame, as in Joint-SLT, which CTC reads.
- the recognition encoder (SLRT) and the translation decoder (SLTT) are the sign-to-text mapping's
  encoder-decoder (models.sign2text.SignToText, reused: sinusoidal positions, pre-LN, tied output
  embedding, greedy and beam search with the GNMT length penalty).
- the gloss variant ("Joint-SLT with glosses", table 1) adds a linear gloss classifier on every
  encoder output and the CTC loss over the gloss sequence (Graves et al. 2006; blank = 0).

Gloss target layout (CTC): `glosses` (B, S) long, each row the sentence's gloss ids in order,
left-aligned, padded with 0. Gloss ids are 1 .. num_glosses - 1; 0 is the CTC blank and is never a
gloss, so it doubles as padding and a row's target length is its number of non-zero entries.

Loss: L = lambda_R * L_R + lambda_T * L_T (Camgoz et al. eq. 5). L_T is the token cross-entropy,
mean over non-pad target tokens (models.transformer.token_cross_entropy). L_R = -log p(G | V) per
sentence (CTC), mean over the batch (a per-sentence sum over alignments, not divided by gloss
length: that is the quantity Camgoz et al. define). Defaults lambda_R = 5, lambda_T = 1: our
reading of the weights of Camgoz et al.'s best Sign2(Gloss+Text) model (the UniGloR paper does not
restate them; both are constructor arguments). Without glosses (num_glosses=None) L = lambda_T * L_T. A sentence whose
frames are too few for its glosses has no CTC alignment; its L_R is set to 0 (zero_infinity)
rather than making the batch's loss infinite.

Masks are True where a point / frame is valid (see models/transformer.py).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.outputs import ModelOutput
from models.sign2text import SignToText
from models.transformer import TransformerSpec, check_mask, evaluating, token_cross_entropy

CTC_BLANK = 0
RECOGNITION_WEIGHT = 5.0  # lambda_R
TRANSLATION_WEIGHT = 1.0  # lambda_T


class KeypointFrameEmbedding(nn.Module):
    """(B, T, V, C) keypoints + (B, T, V) point mask + (B, T) frame mask -> (B, T, D)."""

    def __init__(self, num_points: int, num_coords: int, d_model: int):
        super().__init__()
        self.num_points, self.num_coords = num_points, num_coords
        self.proj = nn.Linear(num_points * (num_coords + 1), d_model)
        self.norm = nn.LayerNorm(d_model)

    def forward(self, x: torch.Tensor, point_mask: torch.Tensor, frame_mask: torch.Tensor) -> torch.Tensor:
        batch, frames, points, coords = x.shape
        if (points, coords) != (self.num_points, self.num_coords):
            raise ValueError(
                f"Joint-SLT: expected keypoints (B, T, {self.num_points}, {self.num_coords}), got {tuple(x.shape)}"
            )
        check_mask(frame_mask, (batch, frames), "Joint-SLT frame_mask")
        present = point_mask.bool() & frame_mask[..., None]  # (B, T, V)
        x = x.masked_fill(~present[..., None], 0.0)  # (B, T, V, C); absent values (even NaN) never read
        feats = torch.cat([x, present[..., None].to(x.dtype)], dim=-1).flatten(2)  # (B, T, V*(C+1))
        return torch.relu(self.norm(self.proj(feats)))  # (B, T, D)


def ctc_gloss_loss(gloss_logits: torch.Tensor, frame_mask: torch.Tensor, glosses: torch.Tensor) -> torch.Tensor:
    """L_R: -log p(glosses | frames) by CTC, mean over the batch (module doc for the layout).
    gloss_logits (B, T, num_glosses), frame_mask (B, T), glosses (B, S) -> scalar."""
    if bool((glosses < 0).any()) or int(glosses.max()) >= gloss_logits.shape[-1]:
        raise ValueError(f"Joint-SLT: gloss ids must lie in 1..{gloss_logits.shape[-1] - 1} (0 = blank/padding)")
    log_probs = torch.log_softmax(gloss_logits.float(), dim=-1).transpose(0, 1)  # (T, B, G)
    target_lengths = (glosses != CTC_BLANK).sum(dim=1)  # (B,)
    if bool((target_lengths == 0).any()):
        raise ValueError("Joint-SLT: every sentence needs at least one gloss for the CTC loss")
    # Left-aligned rows: the non-zero entries come first, so the padded 2-D layout is what ctc_loss reads.
    per_sentence = F.ctc_loss(
        log_probs, glosses, frame_mask.sum(dim=1), target_lengths,
        blank=CTC_BLANK, reduction="none", zero_infinity=True,
    )  # (B,)
    return per_sentence.mean()


def ctc_collapse(path: list[int]) -> list[int]:
    """A per-frame CTC path -> its labelling: repeats merged, then blanks dropped."""
    merged = [g for i, g in enumerate(path) if i == 0 or g != path[i - 1]]
    return [g for g in merged if g != CTC_BLANK]


class JointSLT(nn.Module):
    """Keypoints (B, T, V, C) -> token ids, optionally with the CTC gloss head on the encoder."""

    def __init__(
        self,
        num_points: int,
        num_coords: int,
        vocab_size: int,
        spec: TransformerSpec = TransformerSpec(),
        num_glosses: int | None = None,
        recognition_weight: float = RECOGNITION_WEIGHT,
        translation_weight: float = TRANSLATION_WEIGHT,
        label_smoothing: float = 0.0,
        pad_id: int = 0,
        bos_id: int = 1,
        eos_id: int = 2,
    ):
        """num_glosses: the gloss vocabulary size INCLUDING the blank 0 (gloss variant), or None for
        gloss-free Joint-SLT."""
        super().__init__()
        if num_glosses is not None and num_glosses < 2:
            raise ValueError(f"JointSLT: num_glosses must be >= 2 (blank + one gloss), got {num_glosses}")
        if recognition_weight < 0 or translation_weight < 0:
            raise ValueError("JointSLT: loss weights must be >= 0")
        self.recognition_weight, self.translation_weight = float(recognition_weight), float(translation_weight)
        self.embedder = KeypointFrameEmbedding(num_points, num_coords, spec.d_model)
        self.translator = SignToText(spec.d_model, vocab_size, spec, label_smoothing, True, pad_id, bos_id, eos_id)
        self.gloss_head = nn.Linear(spec.d_model, num_glosses) if num_glosses is not None else None

    @property
    def pad_id(self) -> int:
        return self.translator.pad_id

    def encode(
        self, x: torch.Tensor, point_mask: torch.Tensor, frame_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """-> encoder memory (B, T, D) and the frame embeddings (B, T, D) it was computed from."""
        feats = self.embedder(x, point_mask, frame_mask)  # (B, T, D)
        return self.translator.encode(feats, frame_mask), feats

    def gloss_logits(self, memory: torch.Tensor) -> torch.Tensor:
        """(B, T, D) encoder memory -> (B, T, num_glosses) per-frame gloss logits (blank = 0)."""
        if self.gloss_head is None:
            raise ValueError("JointSLT: this model has no gloss head (built with num_glosses=None)")
        return self.gloss_head(memory)

    def losses(
        self, memory: torch.Tensor, frame_mask: torch.Tensor, logits: torch.Tensor, tgt_out: torch.Tensor,
        glosses: torch.Tensor | None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Eq. 5 of Camgoz et al. from the encoder memory (B, T, D) and the teacher-forced logits
        (B, L, vocab): (L, metrics). ConSLT adds its term to it."""
        loss_t = token_cross_entropy(logits, tgt_out, self.pad_id, self.translator.label_smoothing)
        loss = self.translation_weight * loss_t
        metrics = {"loss_translation": loss_t.detach()}
        if self.gloss_head is not None:
            if glosses is None:
                raise ValueError("JointSLT: the gloss variant needs `glosses` (B, S) in forward")
            loss_r = ctc_gloss_loss(self.gloss_logits(memory), frame_mask, glosses)
            loss = loss + self.recognition_weight * loss_r
            metrics["loss_recognition"] = loss_r.detach()
        return loss, metrics

    def forward(
        self, x: torch.Tensor, point_mask: torch.Tensor, frame_mask: torch.Tensor,
        tgt_in: torch.Tensor, tgt_out: torch.Tensor, glosses: torch.Tensor | None = None,
    ) -> ModelOutput:
        """x (B, T, V, C), point_mask (B, T, V), frame_mask (B, T); tgt_in / tgt_out (B, L) as
        models.transformer.teacher_forcing_pair builds them; glosses (B, S) in the module doc's
        layout (gloss variant only). Loss: eq. 5 of Camgoz et al. (module doc)."""
        memory, _ = self.encode(x, point_mask, frame_mask)
        logits = self.translator.decode(memory, frame_mask, tgt_in)  # (B, L, vocab)
        loss, metrics = self.losses(memory, frame_mask, logits, tgt_out, glosses)
        return ModelOutput(loss, metrics)

    # ---- inference ---------------------------------------------------------------------------

    def greedy(
        self, x: torch.Tensor, point_mask: torch.Tensor, frame_mask: torch.Tensor, max_len: int = 100
    ) -> list[list[int]]:
        with evaluating(self):
            return self.translator.greedy(self.embedder(x, point_mask, frame_mask), frame_mask, max_len)

    def beam_search(
        self, x: torch.Tensor, point_mask: torch.Tensor, frame_mask: torch.Tensor,
        beam_size: int = 5, alpha: float = 1.0, max_len: int = 100,
    ) -> list[list[int]]:
        with evaluating(self):
            feats = self.embedder(x, point_mask, frame_mask)
            return self.translator.beam_search(feats, frame_mask, beam_size, alpha, max_len)

    def recognize(self, x: torch.Tensor, point_mask: torch.Tensor, frame_mask: torch.Tensor) -> list[list[int]]:
        """Greedy CTC decoding of the gloss head: per-frame argmax, repeats merged, blanks dropped."""
        with evaluating(self):
            memory, _ = self.encode(x, point_mask, frame_mask)
            best = self.gloss_logits(memory).argmax(dim=-1)  # (B, T)
            lengths = frame_mask.sum(dim=1).tolist()
            return [ctc_collapse(row[:n]) for row, n in zip(best.tolist(), lengths, strict=True)]
