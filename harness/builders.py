"""Config -> flat constructor arguments for the models: the only place where models meet the config.

`models/` never imports the config system (it stays pure PyTorch, usable without this harness), so
each builder reads the dataclass fields of its concern and passes plain numbers and strings.
"""

from __future__ import annotations

import dataclasses

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
        decoder_type=p.decoder, query_type=p.queries, dropout=p.dropout, mean_pose=mean_pose,
        # The part-relative terms (models/signmae.py): each hand from its own wrist, the face from its centroid.
        relative_groups=[(CANONICAL.parts["left_hand"], CANONICAL.left_wrist),
                         (CANONICAL.parts["right_hand"], CANONICAL.right_wrist), (CANONICAL.parts["face"], -1)],
        relative_weight=p.part_relative)


def transformer_spec(section) -> TransformerSpec:
    """The encoder-decoder shape of a mapping model's config section (dim, layers, heads, dropout);
    the feed-forward width is 4 x dim, as in the Transformer and Joint-SLT."""
    return TransformerSpec(d_model=section.dim, num_heads=section.heads, num_encoder_layers=section.layers,
                           num_decoder_layers=section.layers, dim_feedforward=4 * section.dim,
                           dropout=section.dropout)


def build_sign2text(cfg: ExperimentConfig, d_in: int, vocab: Vocabulary):
    from models.sign2text import SignToText
    return SignToText(d_in=d_in, vocab_size=len(vocab), spec=transformer_spec(cfg.sign2text),
                      label_smoothing=cfg.sign2text.label_smoothing, tie_embeddings=cfg.sign2text.tie_embeddings,
                      pad_id=vocab.pad_id, bos_id=vocab.bos_id, eos_id=vocab.eos_id)


def build_backtranslator(cfg: ExperimentConfig, num_coords: int, vocab: Vocabulary):
    from models.backtranslator import BackTranslator
    return BackTranslator(num_points=CANONICAL.num_points, num_coords=num_coords, vocab_size=len(vocab),
                          spec=transformer_spec(cfg.backtranslator), downsample=BACKTRANSLATOR_DOWNSAMPLE,
                          label_smoothing=BACKTRANSLATOR_LABEL_SMOOTHING, pad_id=vocab.pad_id, bos_id=vocab.bos_id,
                          eos_id=vocab.eos_id)


def text2sign_stride(cfg: ExperimentConfig) -> int:
    """`text2sign.stride`, 0 meaning the window: non-overlapping segments (section 4.2)."""
    return cfg.text2sign.stride or cfg.pretrain.window


def text2sign_queries(cfg: ExperimentConfig, longest: int | None) -> int:
    """The text-to-sign decoder's query count: `text2sign.num_queries`, or with 0 the segment count of
    the longest training sequence (`longest`), with no margin. A margin would buy nothing: a query
    beyond the longest training sequence never has a target, so its representation is never trained
    and its length-regulator logit only ever learns "not valid"; generation cannot use it. A dev or
    test sentence longer than that is produced truncated to this many segments (the metrics compare
    sequences of different lengths), as it would be with any extra queries."""
    if cfg.text2sign.num_queries:
        return cfg.text2sign.num_queries
    if not longest or longest < 1:
        raise ValueError("text2sign.num_queries 0 follows the data: pass the longest training sequence's segment count")
    return longest


def build_text2sign(cfg: ExperimentConfig, d_z: int, vocab: Vocabulary, longest: int | None = None,
                    pad_id: int | None = None):
    """longest: the longest training sequence's segment count (needed when text2sign.num_queries is 0);
    pad_id: the tokens' padding id when they are not the vocabulary's (a Hugging Face tokenizer's)."""
    from models.text2sign import TextToSign
    t = cfg.text2sign
    return TextToSign(vocab_size=len(vocab), d_z=d_z, spec=transformer_spec(t),
                      num_queries=text2sign_queries(cfg, longest), text_encoder=t.text_encoder,
                      pad_id=vocab.pad_id if pad_id is None else pad_id, reduction=t.loss_reduction)


def build_recognizer(cfg: ExperimentConfig, d_in: int, num_classes: int, longest: int = 1024):
    """Table 3: `recognition.model` signmae (the head over z) and transformer (the same encoder over
    frames) are a RecognitionHead; gru a GRUClassifier. Width, depth and heads default to SignMAE's.
    longest: the longest input sequence (windows or frames) the positional table must cover."""
    from models.recognition import GRUClassifier, RecognitionHead
    r, p = cfg.recognition, cfg.pretrain
    dim, depth, heads = r.dim or p.dim, r.depth or p.depth, r.heads or p.heads
    if r.model == "gru":
        return GRUClassifier(d_in, num_classes, hidden=dim, layers=max(1, depth), dropout=r.dropout)
    return RecognitionHead(d_in, num_classes, d_model=dim, depth=depth, num_heads=heads, dropout=r.dropout,
                           max_positions=max(1024, longest))


def build_keypoint_translator(cfg: ExperimentConfig, num_coords: int, vocab: Vocabulary, num_glosses: int | None):
    """Table 1's translation baselines on keypoints, sized by the sign2text keys (the paper profile:
    Joint-SLT's 512 wide, 3 layers, 8 heads): `sign2text.method` joint_slt / joint_slt_gloss (with
    num_glosses, blank included) -> JointSLT, conslt -> ConSLT (their papers' other settings are
    the models' defaults)."""
    from models.conslt import ConSLT
    from models.joint_slt import JointSLT
    s = cfg.sign2text
    cls = ConSLT if s.method == "conslt" else JointSLT
    return cls(num_points=CANONICAL.num_points, num_coords=num_coords, vocab_size=len(vocab), spec=transformer_spec(s),
               num_glosses=num_glosses, label_smoothing=s.label_smoothing, pad_id=vocab.pad_id, bos_id=vocab.bos_id,
               eos_id=vocab.eos_id)


def build_production_baseline(cfg: ExperimentConfig, num_coords: int, vocab: Vocabulary, longest: int):
    """Table 2's production baselines, sized by the text2sign keys: `text2sign.method` pt ->
    ProgressiveTransformer, nslp_g -> NSLPG with `longest` (the longest training sequence's
    frames) as its fixed output length. The positional tables cover twice the longest sequence."""
    from models.nslp_g import NSLPG
    from models.progressive_transformer import ProgressiveTransformer
    t = cfg.text2sign
    spec = dataclasses.replace(transformer_spec(t), max_positions=max(1024, 2 * longest))
    if t.method == "nslp_g":
        return NSLPG(len(vocab), CANONICAL.num_points, num_coords, longest, spec, pad_id=vocab.pad_id)
    return ProgressiveTransformer(len(vocab), CANONICAL.num_points, num_coords, spec, pad_id=vocab.pad_id)
