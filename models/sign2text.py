"""Sign-to-text mapping (paper section 3.4, eq. 3; appendix B.2).

The frozen SignMAE encoder turns each sliding-window segment of a sign sequence into one implicit
gloss-level representation z_i, so a sentence becomes Z = (z_1..z_N) with N = floor((T - w) / s) + 1.
A Transformer encoder-decoder (configured after Joint-SLT / joeynmt: pre-LN, sinusoidal positions,
ReLU feed-forward) maps Z to the spoken sentence, trained with token cross-entropy (eq. 3) and decoded
with beam search (beam 5 in the paper) and the GNMT length penalty as joeynmt applies it.

The model takes any (B, N, D_in) feature sequence, so the back-translator (models/backtranslator.py)
reuses it behind a keypoint-frame embedder instead of duplicating the encoder-decoder and decoding.

Masks are True where a position is valid (see models/transformer.py).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from models.outputs import ModelOutput
from models.transformer import (
    TransformerSpec,
    causal_mask,
    check_mask,
    evaluating,
    length_penalty,
    token_cross_entropy,
)


class SignToText(nn.Module):
    """Transformer encoder-decoder from a feature sequence Z (B, N, D_in) to token ids.

    Target convention (models.transformer.teacher_forcing_pair builds it): tgt_in = [BOS, y.., PAD..],
    tgt_out = [y.., EOS, PAD..], both (B, L). Decoded sentences are returned without BOS/EOS.
    """

    def __init__(
        self,
        d_in: int,
        vocab_size: int,
        spec: TransformerSpec = TransformerSpec(),
        label_smoothing: float = 0.0,
        tie_embeddings: bool = True,
        pad_id: int = 0,
        bos_id: int = 1,
        eos_id: int = 2,
    ):
        super().__init__()
        if len({pad_id, bos_id, eos_id}) != 3:
            raise ValueError(f"pad_id, bos_id, eos_id must differ, got {pad_id}, {bos_id}, {eos_id}")
        if max(pad_id, bos_id, eos_id) >= vocab_size:
            raise ValueError(f"special token ids must be < vocab_size={vocab_size}")
        d_model = spec.d_model
        self.d_model = d_model
        self.vocab_size = vocab_size
        self.label_smoothing = label_smoothing
        self.pad_id, self.bos_id, self.eos_id = pad_id, bos_id, eos_id

        self.src_proj = nn.Linear(d_in, d_model)
        self.src_pos = spec.positions()
        self.src_dropout = nn.Dropout(spec.dropout)
        self.encoder = spec.encoder()

        self.tgt_embed = nn.Embedding(vocab_size, d_model)
        # std d^-1/2 with the sqrt(d) input scale below: unit-scale inputs, and unit-scale logits
        # when the output projection shares this matrix.
        nn.init.normal_(self.tgt_embed.weight, std=d_model**-0.5)
        self.tgt_pos = spec.positions()
        self.tgt_dropout = nn.Dropout(spec.dropout)
        self.decoder = spec.decoder()
        self.out_proj = nn.Linear(d_model, vocab_size, bias=False)
        if tie_embeddings:
            self.out_proj.weight = self.tgt_embed.weight

    # ---- network -----------------------------------------------------------------------------

    def encode(self, z: torch.Tensor, z_mask: torch.Tensor) -> torch.Tensor:
        """z (B, N, D_in), z_mask (B, N) True = valid -> memory (B, N, D)."""
        if z.dim() != 3:
            raise ValueError(f"SignToText.encode: expected z of shape (B, N, D_in), got {tuple(z.shape)}")
        check_mask(z_mask, z.shape[:2], "SignToText z_mask")
        # Zero the padding so that whatever a caller left there (even NaN) cannot leak through
        # 0-weighted attention (0 * NaN = NaN).
        z = z.masked_fill(~z_mask[..., None], 0.0)
        x = self.src_dropout(self.src_pos(self.src_proj(z)))  # (B, N, D)
        return self.encoder(x, src_key_padding_mask=~z_mask)  # (B, N, D)

    def decoder_states(self, memory: torch.Tensor, z_mask: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        """memory (B, N, D), tgt_in (B, L) -> the decoder's final hidden states (B, L, D), before
        the output projection (ConSLT's contrastive term reads them).

        No target padding mask: pads only trail a sentence and the causal mask already keeps every
        real position from seeing them.
        """
        y = self.tgt_embed(tgt_in) * math.sqrt(self.d_model)  # (B, L, D)
        y = self.tgt_dropout(self.tgt_pos(y))  # (B, L, D)
        return self.decoder(
            y, memory, tgt_mask=causal_mask(tgt_in.shape[1], tgt_in.device),
            memory_key_padding_mask=~z_mask,
        )  # (B, L, D)

    def decode(self, memory: torch.Tensor, z_mask: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        """memory (B, N, D), tgt_in (B, L) -> logits (B, L, vocab)."""
        return self.out_proj(self.decoder_states(memory, z_mask, tgt_in))  # (B, L, vocab)

    def logits(self, z: torch.Tensor, z_mask: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        """Teacher-forced logits (B, L, vocab)."""
        return self.decode(self.encode(z, z_mask), z_mask, tgt_in)

    def forward(
        self, z: torch.Tensor, z_mask: torch.Tensor, tgt_in: torch.Tensor, tgt_out: torch.Tensor
    ) -> ModelOutput:
        """Eq. 3: cross-entropy, mean over the non-pad tokens of tgt_out (the loss is computed in
        forward so DistributedDataParallel sees the whole graph)."""
        logits = self.logits(z, z_mask, tgt_in)  # (B, L, vocab)
        return ModelOutput(token_cross_entropy(logits, tgt_out, self.pad_id, self.label_smoothing))

    # ---- decoding ----------------------------------------------------------------------------

    def _next_log_probs(self, memory: torch.Tensor, z_mask: torch.Tensor, prefix: torch.Tensor) -> torch.Tensor:
        """Log-probabilities of the next token after prefix (B', t) -> (B', vocab). PAD and BOS are
        never valid outputs, so they get -inf. The whole prefix is re-decoded each step: sentences
        are short (tens of tokens), and it keeps the decoder a stock nn.TransformerDecoder."""
        logits = self.decode(memory, z_mask, prefix)[:, -1]  # (B', vocab)
        logits[:, [self.pad_id, self.bos_id]] = float("-inf")
        return torch.log_softmax(logits.float(), dim=-1)

    def _strip(self, ids: list[int]) -> list[int]:
        """Generated ids (after BOS) -> the sentence: up to the first EOS, without it."""
        return ids[: ids.index(self.eos_id)] if self.eos_id in ids else ids

    def greedy(self, z: torch.Tensor, z_mask: torch.Tensor, max_len: int = 100) -> list[list[int]]:
        """Greedy decoding: at most max_len generated tokens (EOS included) per sentence."""
        with evaluating(self):
            memory = self.encode(z, z_mask)  # (B, N, D)
            batch = z.shape[0]
            tokens = torch.full((batch, 1), self.bos_id, dtype=torch.long, device=z.device)  # (B, 1)
            ended = torch.zeros(batch, dtype=torch.bool, device=z.device)
            for _ in range(max_len):
                step = self._next_log_probs(memory, z_mask, tokens).argmax(dim=-1)  # (B,)
                step = step.masked_fill(ended, self.pad_id)
                tokens = torch.cat([tokens, step[:, None]], dim=1)  # (B, t + 1)
                ended |= step == self.eos_id
                if bool(ended.all()):
                    break
            return [self._strip(row[1:]) for row in tokens.tolist()]

    def beam_search(
        self, z: torch.Tensor, z_mask: torch.Tensor, beam_size: int = 5, alpha: float = 1.0, max_len: int = 100
    ) -> list[list[int]]:
        """Batched beam search with the GNMT length penalty ((5 + len) / 6) ** alpha (joeynmt).

        Each step ranks the 2K best extensions of the K live beams. An EOS extension ranked within the
        top K finishes a hypothesis, scored log p / penalty(len incl. EOS); the K best non-EOS
        extensions stay alive. A sentence is done when its best extension is an EOS (joeynmt's rule:
        live scores only fall, so with alpha = 0 nothing live can still win; stopping after K finished
        hypotheses instead, as fairseq does, lets early low-scoring EOS endings end the search before
        the best sentence finishes). At max_len the live beams compete unterminated (as greedy returns
        them). With K = 1 this is exactly greedy.
        """
        if beam_size < 1:
            raise ValueError(f"beam_size must be >= 1, got {beam_size}")
        with evaluating(self):
            batch, k, vocab = z.shape[0], beam_size, self.vocab_size
            memory = self.encode(z, z_mask).repeat_interleave(k, dim=0)  # (B*K, N, D)
            mem_mask = z_mask.repeat_interleave(k, dim=0)  # (B*K, N)
            tokens = torch.full((batch * k, 1), self.bos_id, dtype=torch.long, device=z.device)  # (B*K, 1)
            # One live beam at the start, else the K identical copies would fill the beam.
            scores = torch.full((batch, k), float("-inf"), device=z.device)  # (B, K)
            scores[:, 0] = 0.0
            finished: list[list[tuple[float, list[int]]]] = [[] for _ in range(batch)]
            done = [False] * batch
            rows = torch.arange(batch, device=z.device)[:, None] * k  # (B, 1)
            for step in range(max_len):
                log_probs = self._next_log_probs(memory, mem_mask, tokens).view(batch, k, vocab)
                candidates = (scores[:, :, None] + log_probs).view(batch, k * vocab)  # (B, K*vocab)
                top_scores, top_index = candidates.topk(min(2 * k, k * vocab), dim=1)  # (B, 2K)
                top_beam, top_token = top_index // vocab, top_index % vocab  # (B, 2K)
                is_eos = top_token == self.eos_id

                final = is_eos[:, :k] & torch.isfinite(top_scores[:, :k])  # (B, K)
                penalty = length_penalty(step + 1, alpha)
                for b, r in final.nonzero().tolist():
                    if not done[b]:
                        hyp = tokens[b * k + int(top_beam[b, r]), 1:].tolist()
                        finished[b].append((float(top_scores[b, r]) / penalty, hyp))
                done = [d or e for d, e in zip(done, is_eos[:, 0].tolist(), strict=True)]
                if all(done):
                    break

                # Stable sort puts non-EOS candidates first, keeping their rank order.
                keep = torch.sort(is_eos.to(torch.uint8), dim=1, stable=True).indices[:, :k]  # (B, K)
                scores = top_scores.gather(1, keep)
                source = (rows + top_beam.gather(1, keep)).view(-1)  # (B*K,)
                tokens = torch.cat([tokens[source], top_token.gather(1, keep).view(-1, 1)], dim=1)
            else:
                penalty = length_penalty(tokens.shape[1] - 1, alpha)
                for b in range(batch):
                    if done[b]:
                        continue
                    for j in range(k):
                        if math.isfinite(float(scores[b, j])):
                            finished[b].append((float(scores[b, j]) / penalty, tokens[b * k + j, 1:].tolist()))
            # max() keeps the first of equal scores: the earliest finished, i.e. the higher-ranked one.
            return [self._strip(max(hyps, key=lambda h: h[0])[1]) for hyps in finished]
