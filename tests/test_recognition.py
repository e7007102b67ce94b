"""Recognition head (paper section 5, table 3)."""

from __future__ import annotations

import pytest
import torch

from models.recognition import RecognitionHead
from models.transformer import pad_batch

from conftest import fit


def tiny(pooling: str = "cls", **kw) -> RecognitionHead:
    args = dict(d_model=32, depth=2, num_heads=4, mlp_ratio=2.0, dropout=0.0, pooling=pooling)
    args.update(kw)
    return RecognitionHead(16, 5, **args)


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_shapes_topk_and_padding_ignored(pooling):
    torch.manual_seed(0)
    model = tiny(pooling).eval()
    x, mask = pad_batch([torch.randn(4, 16), torch.randn(2, 16), torch.randn(6, 16)])
    logits = model.logits(x, mask)
    assert logits.shape == (3, 5)
    top = model.predict(x, mask, k=3)
    assert top.shape == (3, 3)
    assert top[:, 0].tolist() == logits.argmax(-1).tolist()
    assert all(len(set(row)) == 3 for row in top.tolist())
    changed = x.clone()
    changed[1, 2:] = float("nan")
    assert torch.allclose(model.logits(changed, mask), logits, atol=1e-5)
    loss = model(x, mask, torch.tensor([0, 1, 4])).loss
    assert loss.dim() == 0 and torch.isfinite(loss)


def test_mean_pooling_depends_on_every_valid_position():
    torch.manual_seed(0)
    model = tiny("mean").eval()
    x, mask = pad_batch([torch.randn(4, 16)])
    changed = x.clone()
    changed[0, 3] += 1.0
    assert not torch.allclose(model.logits(changed, mask), model.logits(x, mask))


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="pooling"):
        RecognitionHead(16, 5, pooling="max")
    with pytest.raises(ValueError, match="no valid position"):
        tiny().logits(torch.randn(1, 3, 16), torch.zeros(1, 3, dtype=torch.bool))


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_overfits_a_few_classes(pooling):
    torch.set_num_threads(1)
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(5)
    lengths = [3, 5, 2, 4, 6, 3, 5, 4, 2, 6]
    labels = torch.tensor([0, 1, 2, 3, 4, 0, 1, 2, 3, 4])
    x, mask = pad_batch([torch.randn(n, 16, generator=gen) for n in lengths])
    model = tiny(pooling)
    first, last = fit(model, lambda: model(x, mask, labels).loss, 200, 3e-3)
    assert last < first / 20
    assert model.predict(x, mask, k=1)[:, 0].tolist() == labels.tolist()


def _frozen_features(gen, n_per_class: int, means: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sequences of 3-8 'z' per item: its class's mean plus unit noise at every position."""
    items, labels = [], []
    for c in range(len(means)):
        for _ in range(n_per_class):
            n = int(torch.randint(3, 9, (1,), generator=gen))
            items.append(means[c] + torch.randn(n, means.shape[1], generator=gen))
            labels.append(c)
    x, mask = pad_batch(items)
    return x, mask, torch.tensor(labels)


@pytest.mark.parametrize("model_name", ["head", "gru"])
def test_learns_held_out_items_of_separable_frozen_features(model_name):
    """Generalisation, not memorisation: trained on 20 items per class, scored on 20 other items."""
    from harness.probe import topk_accuracy
    from models.recognition import GRUClassifier
    torch.set_num_threads(1)
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(11)
    means = 0.6 * torch.randn(6, 16, generator=gen)  # classes overlap item by item (noise std 1 per dim)
    x, mask, y = _frozen_features(gen, 20, means)
    xt, mt, yt = _frozen_features(gen, 20, means)
    model = (RecognitionHead(16, 6, d_model=32, depth=2, num_heads=4, dropout=0.1) if model_name == "head"
             else GRUClassifier(16, 6, hidden=32, layers=1, dropout=0.1))
    before = topk_accuracy(model.eval().logits(xt, mt).detach().numpy(), yt.numpy(), (1, 3))
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    for epoch in range(40):
        model.train()
        for idx in torch.randperm(len(y), generator=gen).split(16):
            loss = model(x[idx], mask[idx], y[idx]).loss
            opt.zero_grad()
            loss.backward()
            opt.step()
    after = topk_accuracy(model.eval().logits(xt, mt).detach().numpy(), yt.numpy(), (1, 3))
    assert after["top1"] >= 80.0 and after["top3"] >= 95.0, (before, after)  # chance: 16.7 and 50
    assert before["top1"] < 50.0
