"""Config -> flat constructor arguments for the models: the only place where models meet the config.

`models/` never imports the config system (it stays pure PyTorch, usable without this harness), so
each builder reads the dataclass fields of its concern and passes plain numbers and strings.
"""

from __future__ import annotations

import torch

from harness.config import ExperimentConfig
from harness.data.datasets import Vocabulary
from models.layout import CANONICAL
from models.transformer import TransformerSpec

# The back-translator's frame downsampling before its encoder (it reads raw frames, not segments)
# and its label smoothing: fixed, since it is the judge of text-to-sign, not a method under study.
BACKTRANSLATOR_DOWNSAMPLE = 4
BACKTRANSLATOR_LABEL_SMOOTHING = 0.1


def build_signmae(cfg: ExperimentConfig, in_channels: int, mean_pose: torch.Tensor | None = None):
    """mean_pose (V, C): the decoder's reference pose from the training segments (a saved buffer,
    so a loaded model needs none)."""
    from models.graph import adjacency_subsets
    from models.signmae import SignMAE
    p = cfg.pretrain
    adjacency = adjacency_subsets(CANONICAL.num_points, CANONICAL.edges, CANONICAL.index("body.neck"))
    return SignMAE(
        num_points=CANONICAL.num_points, in_channels=in_channels, window=p.window, adjacency=adjacency,
        extractor_channels=p.extractor_channels, dim=p.dim, depth=p.depth, heads=p.heads,
        decoder_depth=p.decoder_depth, decoder_heads=p.heads, mask_ratio=p.mask_ratio,
        decoder_type=p.decoder, query_type=p.queries, dropout=p.dropout, mean_pose=mean_pose)


def transformer_spec(section) -> TransformerSpec:
    """The encoder-decoder shape of a mapping model's config section (dim, layers, heads, dropout);
    the feed-forward width is 4 x dim, as in the Transformer and Joint-SLT."""
    return TransformerSpec(d_model=section.dim, num_heads=section.heads, num_encoder_layers=section.layers,
                           num_decoder_layers=section.layers, dim_feedforward=4 * section.dim,
                           dropout=section.dropout)


def build_sign2text(cfg: ExperimentConfig, d_in: int, vocab: Vocabulary):
    from models.sign2text import SignToText
    return SignToText(d_in=d_in, vocab_size=len(vocab), spec=transformer_spec(cfg.sign2text),
                      label_smoothing=cfg.sign2text.label_smoothing, pad_id=vocab.pad_id, bos_id=vocab.bos_id,
                      eos_id=vocab.eos_id)


def build_backtranslator(cfg: ExperimentConfig, num_coords: int, vocab: Vocabulary):
    from models.backtranslator import BackTranslator
    return BackTranslator(num_points=CANONICAL.num_points, num_coords=num_coords, vocab_size=len(vocab),
                          spec=transformer_spec(cfg.backtranslator), downsample=BACKTRANSLATOR_DOWNSAMPLE,
                          label_smoothing=BACKTRANSLATOR_LABEL_SMOOTHING, pad_id=vocab.pad_id, bos_id=vocab.bos_id,
                          eos_id=vocab.eos_id)


def build_text2sign(cfg: ExperimentConfig, d_z: int, vocab: Vocabulary):
    from models.text2sign import TextToSign
    t = cfg.text2sign
    return TextToSign(vocab_size=len(vocab), d_z=d_z, spec=transformer_spec(t), num_queries=t.num_queries,
                      text_encoder=t.text_encoder, pad_id=vocab.pad_id)
