"""The text2sign stage's paper settings (section 3.4, appendix B.2): a pretrained text encoder read
through its own tokenizer, and the epoch kept by back-translated dev BLEU-4.

The Hugging Face model is a tiny BERT built here and saved to a temporary folder (nothing is
downloaded); `transformers` comes with the [test] extra, so these tests never skip."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import pytest
import torch

from harness.cache import StageCache
from harness.config import ConfigError, apply_overrides, load_profile
from harness.data.datasets import Vocabulary
from harness.loop import local_runtime
from harness.pipeline import run_trial
from harness.stages import STAGES, stage_keys
from harness.stages.text2sign import sentence_tokens

LETTERS = "abcdefghijklmnopqrstuvwxyz0123456789"


def tiny_bert(folder) -> str:
    """A 1-layer, 32-wide BERT and a character-level WordPiece tokenizer (every lowercase word splits
    into its letters, so no sentence is [UNK]), saved with save_pretrained."""
    from transformers import BertConfig, BertModel, BertTokenizerFast
    folder.mkdir()
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *LETTERS, *(f"##{c}" for c in LETTERS)]
    (folder / "vocab.txt").write_text("\n".join(words) + "\n")
    # transformers 5 names the argument `vocab` (a path or a dict); `vocab_file` is ignored there.
    tokenizer = BertTokenizerFast(vocab=str(folder / "vocab.txt"), do_lower_case=True)
    assert len(tokenizer) == len(words)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(words), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=256, pad_token_id=0)
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def test_sentences_go_through_the_models_own_tokenizer(tmp_path):
    path = tiny_bert(tmp_path / "bert")
    corpus = {"train": [SimpleNamespace(text="ab c")], "dev": [SimpleNamespace(text="ba")]}
    vocab = Vocabulary([*Vocabulary.SPECIALS, "ab", "c"])
    learned, pad = sentence_tokens(load_profile("debug"), corpus, vocab)
    assert learned["train"] == [[4, 5]] and pad == vocab.pad_id
    hf, pad = sentence_tokens(apply_overrides(load_profile("debug"), {"text2sign.text_encoder": path}), corpus, vocab)
    # [CLS] a ##b c [SEP] in the tiny vocabulary: specials 0-4, letters from 5, continuations from 5 + 36
    assert hf["train"] == [[2, 5, 5 + 36 + 1, 7, 3]] and hf["dev"] == [[2, 6, 5 + 36, 3]] and pad == 0


def test_a_folder_that_is_not_a_model_is_one_line(tmp_path):
    cfg = apply_overrides(load_profile("debug"), {"text2sign.text_encoder": str(tmp_path)})
    with pytest.raises(ConfigError, match=r"^text2sign.text_encoder '.*' is not a local Hugging Face model folder"):
        sentence_tokens(cfg, {"train": [SimpleNamespace(text="a")]}, Vocabulary(list(Vocabulary.SPECIALS)))


@pytest.mark.slow
def test_the_stage_trains_and_generates_with_a_local_bert(tmp_path):
    torch.set_num_threads(1)
    cfg = load_profile("debug", {"text2sign.text_encoder": tiny_bert(tmp_path / "bert")})
    cache = StageCache(tmp_path / "cache")
    result, samples = run_trial(cfg, ("text2sign",), cache, local_runtime(lambda s: None))
    assert result.stages["text2sign"] == "computed"
    test = result.tasks["text2sign"].test
    assert len(test.hypotheses) == cfg.data.synth.test and all(v == v for v in test.metrics.values())  # no NaN
    assert samples and all(s.generated.shape[1:] == s.ground_truth.shape[1:] for s in samples)
    key = stage_keys(cfg, ("text2sign",))["text2sign"]
    state = STAGES["text2sign"].load(cache.entry(STAGES["text2sign"].cache_folder, key).path)["model"]
    # The BERT was trained in the mapping (its 77-token embedding, the projection to the mapping's width),
    # and the learned encoder's embedding is absent.
    assert state["encoder.embeddings.word_embeddings.weight"].shape == (5 + 2 * len(LETTERS), 32)
    assert state["text_proj.weight"].shape == (cfg.text2sign.dim, 32) and "token_embed.weight" not in state
    from transformers import BertModel
    fresh = BertModel.from_pretrained(cfg.text2sign.text_encoder).state_dict()["embeddings.word_embeddings.weight"]
    assert not torch.equal(fresh, state["encoder.embeddings.word_embeddings.weight"])


def test_select_by_back_translated_dev_bleu_keeps_the_best_evaluation(tiny_cfg, tmp_path, monkeypatch):
    """With select_by dev_bt_bleu4 every dev evaluation back-translates dev greedily and the model
    kept is the one of the best score. The scores are set here (a tiny judge scores 0 everywhere),
    and each generate call records which weights produced it."""
    import harness.metrics
    from models.text2sign import TextToSign
    torch.set_num_threads(1)
    cfg = apply_overrides(tiny_cfg, {"text2sign.epochs": 4})
    real_metrics, real_generate = harness.metrics.text_metrics, TextToSign.generate
    seen: list[torch.Tensor] = []

    def generate(self, *args, **kwargs):
        seen.append(self.out_proj.weight.detach().clone())  # the weights that produced this output
        return real_generate(self, *args, **kwargs)

    monkeypatch.setattr(TextToSign, "generate", generate)
    logged: list[dict] = []
    rt = dataclasses.replace(local_runtime(lambda s: None), log_metrics=lambda m, step: logged.append(dict(m)))
    cache = StageCache(tmp_path / "cache")
    # "last" (the small profiles' default) keeps the last epoch and back-translates nothing while training.
    assert cfg.text2sign.select_by == "last"
    run_trial(cfg, ("text2sign",), cache, rt)
    assert not any("text2sign/dev_bt_bleu4_greedy" in m for m in logged) and len(seen) == 2  # final dev, test

    scores = iter([10.0, 30.0, 20.0, 5.0])  # the four dev evaluations: the second is the best

    def text_metrics(hyps, refs):  # the judge is cached by now: only text-to-sign calls this
        out = real_metrics(hyps, refs)
        return {**out, "bleu4": next(scores, out["bleu4"])}

    monkeypatch.setattr(harness.metrics, "text_metrics", text_metrics)
    seen.clear()
    logged.clear()
    run_trial(apply_overrides(cfg, {"text2sign.select_by": "dev_bt_bleu4"}), ("text2sign",), cache, rt)
    assert [m["text2sign/dev_bt_bleu4_greedy"] for m in logged if "text2sign/dev_bt_bleu4_greedy" in m] == [
        10.0, 30.0, 20.0, 5.0]
    assert len(seen) == 6  # dev (one batch) at each of the 4 evaluations, then the final dev and test
    assert torch.equal(seen[4], seen[1]) and torch.equal(seen[5], seen[1])  # the second evaluation's weights
    assert not torch.equal(seen[1], seen[3])  # and training did move them after it


def test_the_text2sign_stride_is_a_key(tiny_cfg, tmp_path):
    """text2sign.stride: 0 is the window (the paper's 15, the same embedding entry as before); below it
    text-to-sign learns overlapping windows and generates (n - 1) * s + w frames."""
    torch.set_num_threads(1)
    both = ("sign2text", "text2sign")
    base = stage_keys(tiny_cfg, both)
    assert stage_keys(apply_overrides(tiny_cfg, {"text2sign.stride": tiny_cfg.pretrain.window}), both) == base
    cfg = apply_overrides(tiny_cfg, {"text2sign.stride": 5})
    keys = stage_keys(cfg, both)
    assert {n for n in base if base[n] != keys[n]} == {"embed_t2s", "text2sign"}
    _, samples = run_trial(cfg, ("text2sign",), StageCache(tmp_path / "cache"), local_runtime(lambda s: None))
    w = cfg.pretrain.window
    assert all((s.generated.shape[0] - w) % 5 == 0 and s.generated.shape[0] >= w for s in samples) and samples


def test_the_loss_reduction_reaches_the_model():
    from harness.builders import build_text2sign
    vocab = Vocabulary([*Vocabulary.SPECIALS, "a"])
    cfg = load_profile("debug")
    assert build_text2sign(cfg, 8, vocab, 3).reduction == "mean"  # the small profiles: today's means
    assert build_text2sign(apply_overrides(cfg, {"text2sign.loss_reduction": "sum"}), 8, vocab, 3).reduction == "sum"
