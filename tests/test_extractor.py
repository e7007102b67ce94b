"""models/extractor.py: the CTR-GC and MS-TCN units against the papers' formulas written out
directly (the reference implementation the fast paths replaced), exact in float64, and the same
parameters (state_dict keys, shapes, initial values from a seed)."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.autograd import gradcheck

from models import extractor
from models.extractor import CTRGraphConv, MultiScaleTemporalConv, SpatioTemporalExtractor, _CTRAggregate
from models.graph import adjacency_subsets
from models.layout import CANONICAL

V = CANONICAL.num_points


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def adjacency() -> torch.Tensor:
    return adjacency_subsets(V, CANONICAL.edges, CANONICAL.index("body.neck"))  # (3, V, V)


def reference_ctr(g: CTRGraphConv, x: torch.Tensor) -> torch.Tensor:
    """CTR-GC as the paper writes it: M = tanh(phi_i - psi_j), Q_k = xi(M) per channel,
    y_i = sum_k sum_j (A_k + alpha Q_k)[c, i, j] rho(x)_j, then BN, residual, ReLU."""
    b, _, t, v = x.shape
    pooled = x.mean(dim=2)
    p = g.phi(pooled).view(b, g.k, g.rel, v)
    q = g.psi(pooled).view(b, g.k, g.rel, v)
    values = g.rho(x).view(b, g.k, g.out_channels, t, v)
    y = torch.zeros(b, g.out_channels, t, v, dtype=x.dtype)
    for k in range(g.k):
        m = torch.tanh(p[:, k, :, :, None] - q[:, k, :, None, :])  # (B, rel, V_i, V_j)
        qk = torch.einsum("cr,brij->bcij", g.xi_weight[k], m) + g.xi_bias[k][None, :, :, None]  # (B, C, V_i, V_j)
        r = g.topology[k] + g.alpha * qk
        y = y + torch.einsum("bcij,bctj->bcti", r, values[:, k])
    return g.relu(g.bn(y) + g.residual(x))


def reference_mstcn(u: MultiScaleTemporalConv, x: torch.Tensor) -> torch.Tensor:
    """MS-TCN as the modules are: each branch applied to x, concatenated, BN, residual, ReLU."""
    y = torch.cat([branch(x) for branch in u.branches], dim=1)
    return u.relu(u.bn(y) + u.residual(x))


def grads(module: nn.Module, forward, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    module.zero_grad()
    x = x.clone().requires_grad_(True)
    y = forward(x)
    (y * torch.linspace(-1, 1, y.numel(), dtype=y.dtype).view_as(y)).sum().backward()
    return y.detach(), [x.grad] + [p.grad.clone() for p in module.parameters()]


@pytest.mark.parametrize("in_channels", [3, 16])  # 8 relation channels and a residual map; 2 and the identity
def test_ctr_gc_equals_the_papers_formula_with_its_gradients(in_channels):
    torch.manual_seed(0)
    g = CTRGraphConv(in_channels, 16, adjacency()).double().train()
    with torch.no_grad():
        g.alpha.fill_(0.7)  # 0 at init would hide the refinement
    x = torch.randn(6, in_channels, 5, V, dtype=torch.float64)  # 6 samples: not a multiple of the chunk
    y_ref, g_ref = grads(g, lambda a: reference_ctr(g, a), x)
    y, g_new = grads(g, g, x)
    assert torch.allclose(y, y_ref, rtol=0, atol=1e-12)
    for a, b in zip(g_new, g_ref):
        assert torch.allclose(a, b, rtol=1e-10, atol=1e-10)


def test_ctr_gc_parameters_are_the_originals():
    """Same state_dict keys, shapes and initial values from a seed as the unit always had."""
    torch.manual_seed(3)
    g = CTRGraphConv(3, 16, adjacency())
    shapes = {k: tuple(v.shape) for k, v in g.state_dict().items()}
    assert shapes == {
        "topology": (3, V, V), "alpha": (1,), "xi_weight": (3, 16, 8), "xi_bias": (3, 16, 1),
        "phi.weight": (24, 3, 1), "phi.bias": (24,), "psi.weight": (24, 3, 1), "psi.bias": (24,),
        "rho.weight": (48, 3, 1, 1), "rho.bias": (48,),
        "bn.weight": (16,), "bn.bias": (16,), "bn.running_mean": (16,), "bn.running_var": (16,),
        "bn.num_batches_tracked": (),
        "residual.0.weight": (16, 3, 1, 1), "residual.0.bias": (16,), "residual.1.weight": (16,),
        "residual.1.bias": (16,), "residual.1.running_mean": (16,), "residual.1.running_var": (16,),
        "residual.1.num_batches_tracked": ()}
    # initial draws in construction order: phi, psi, rho (default conv init), then xi uniform(+-1/sqrt(rel))
    torch.manual_seed(3)
    phi, psi, rho = nn.Conv1d(3, 24, 1), nn.Conv1d(3, 24, 1), nn.Conv2d(3, 48, 1)
    bound = 1 / 8**0.5
    xi_w, xi_b = torch.empty(3, 16, 8).uniform_(-bound, bound), torch.empty(3, 16, 1).uniform_(-bound, bound)
    assert torch.equal(g.phi.weight, phi.weight) and torch.equal(g.psi.bias, psi.bias)
    assert torch.equal(g.rho.weight, rho.weight) and torch.equal(g.xi_weight, xi_w) and torch.equal(g.xi_bias, xi_b)
    assert float(g.alpha.detach()) == 0.0 and torch.equal(g.topology, adjacency().float())


def test_ctr_aggregate_gradcheck():
    torch.manual_seed(0)
    k, b, c, t, v, rel = 2, 5, 3, 4, 6, 2
    args = [torch.randn(k, b, c, t, v), torch.randn(b, k, rel, v), torch.randn(b, k, rel, v), torch.randn(k, c, rel),
            torch.randn(k, c, v * v)]
    args = [a.double().requires_grad_() for a in args]
    assert gradcheck(lambda *a: _CTRAggregate.apply(*a, 2), args)


def test_ctr_gc_does_not_depend_on_the_chunk(monkeypatch):
    torch.manual_seed(0)
    g = CTRGraphConv(16, 16, adjacency()).eval()
    with torch.no_grad():
        g.alpha.fill_(0.5)
        x = torch.randn(7, 16, 5, V)
        y4 = g(x)
        monkeypatch.setattr(extractor, "REFINE_CHUNK", 7)
        y7 = g(x)
    assert torch.allclose(y4, y7, rtol=0, atol=1e-5)


def test_mstcn_equals_its_branches_with_gradients_and_in_evaluation():
    torch.manual_seed(0)
    u = MultiScaleTemporalConv(16, 16).double()
    x = torch.randn(4, 16, 9, V, dtype=torch.float64)
    u.train()
    y_ref, g_ref = grads(u, lambda a: reference_mstcn(u, a), x)
    y, g_new = grads(u, u, x)
    assert torch.allclose(y, y_ref, rtol=0, atol=1e-12)
    for a, b in zip(g_new, g_ref):
        assert torch.allclose(a, b, rtol=1e-10, atol=1e-10)
    u.eval()
    with torch.no_grad():  # the max-pool branch takes the elementwise path without autograd
        assert torch.allclose(u(x), reference_mstcn(u, x), rtol=0, atol=1e-12)
    w = MultiScaleTemporalConv(16, 24).double().train()  # a residual map: its 1x1 conv joins the branches'
    y_ref, g_ref = grads(w, lambda a: reference_mstcn(w, a), x)
    y, g_new = grads(w, w, x)
    assert torch.allclose(y, y_ref, rtol=0, atol=1e-12)
    for a, b in zip(g_new, g_ref):
        assert torch.allclose(a, b, rtol=1e-10, atol=1e-10)


def test_evaluation_does_not_depend_on_how_windows_are_batched():
    """The embed stage encodes windows in chunks: a window's features must not depend on the chunk."""
    torch.manual_seed(0)
    ex = SpatioTemporalExtractor(V, 2, adjacency(), [8, 8], 32, point_pool="flatten").eval()
    x, mask = torch.randn(37, 15, V, 2), torch.rand(37, 15, V) > 0.1
    with torch.no_grad():
        for unit in ex.modules():
            if isinstance(unit, CTRGraphConv):
                unit.alpha.fill_(0.5)  # a trained unit refines: phi and psi matter (a Conv1d would not be invariant)
        whole = ex(x, mask)
        chunked = torch.cat([ex(x[i:i + 16], mask[i:i + 16]) for i in range(0, 37, 16)])
    assert torch.equal(whole, chunked)


def test_bf16_autocast_runs_in_bf16_and_stays_close():
    torch.manual_seed(0)
    ex = SpatioTemporalExtractor(V, 2, adjacency(), [8, 8], 32, point_pool="flatten").train()
    x, mask = torch.randn(5, 15, V, 2), torch.rand(5, 15, V) > 0.1
    y32 = ex(x, mask)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y16 = ex(x, mask)
    assert y16.dtype == torch.bfloat16
    y16.float().sum().backward()
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in ex.parameters() if p.requires_grad)
    assert float((y16.float() - y32).abs().max().detach()) < 0.1 * float(y32.abs().max().detach())
