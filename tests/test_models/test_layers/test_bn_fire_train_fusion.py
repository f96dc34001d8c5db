"""Training-mode BatchNorm fused into the next neuron's firing pass (spike_conv_bn_chain) on
channels-last activations: a training step of the fast path computes the plain path's bits
(outputs, every gradient, running statistics, num_batches_tracked), and the fusion runs."""
import copy

import pytest
import torch
from torch import nn

from mmspike.models import execution_mode
from mmspike.models.backbones import ESpikeFormer
from mmspike.models.neurons import kernels


@pytest.fixture
def train_fused(monkeypatch):
    """How often the fused training BN + firing kernel ran."""
    calls = []
    original = kernels.fire_bn_train_forward

    def counting(*args, **kwargs):
        out = original(*args, **kwargs)
        if out is not None:
            calls.append(out[0].shape)
        return out

    monkeypatch.setattr(kernels, 'fire_bn_train_forward', counting)
    return calls


def _c_available():
    return kernels.fire_backend(torch.empty(0)) == 'c'


def _step(model, x, mode):
    model.zero_grad(set_to_none=True)
    with execution_mode(model, mode):
        outs = model(x)
    loss = sum((o * torch.linspace(-1, 1, o.numel()).view_as(o)).sum() for o in outs)
    loss.backward()
    return [o.detach() for o in outs]


@pytest.mark.parametrize('dtype,momentum', [(torch.float32, 0.1), (torch.float64, None)])
def test_training_step_fuses_bn_and_equals_plain(dtype, momentum, train_fused):
    torch.manual_seed(0)
    model = ESpikeFormer('2m', out_indices=(0, 1, 2, 3)).to(dtype).train()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = momentum  # None: cumulative average over num_batches_tracked
    model = model.to(memory_format=torch.channels_last)
    plain = copy.deepcopy(model)
    x = (torch.randn(2, 3, 64, 64, dtype=dtype) * 2).contiguous(memory_format=torch.channels_last)
    for _ in range(2):  # the second step starts from updated running statistics
        ref = _step(plain, x, 'plain')
        assert not train_fused
        out = _step(model, x, 'fast')
        if _c_available():
            # 2m: 4 CNN + 8 Transformer blocks, each a SepConv (2 BN -> neuron links) and an
            # MLP or conv pair (1), and Q / K / V of every Transformer block (3)
            assert len(train_fused) == 12 * 3 + 8 * 3, len(train_fused)
        del train_fused[:]
        assert all(torch.equal(a, b) for a, b in zip(ref, out))
        for (name, p), q in zip(model.named_parameters(), plain.parameters()):
            assert (p.grad is None) == (q.grad is None), name
            assert p.grad is None or torch.equal(p.grad, q.grad), name
        for (name, a), b in zip(model.named_buffers(), plain.buffers()):
            assert torch.equal(a, b), name


def test_nchw_training_and_hooked_bn_are_not_fused(train_fused):
    torch.manual_seed(0)
    model = ESpikeFormer('2m', out_indices=(3, )).train()
    x = torch.randn(1, 3, 64, 64)
    with execution_mode(model, 'fast'):
        model(x)  # NCHW: ATen's batch norm backward sums in another order there
    assert not train_fused
    model = model.to(memory_format=torch.channels_last)
    bn = next(m for n, m in model.named_modules() if n.endswith('pwconv1.bn'))
    q_neuron = next(m for n, m in model.named_modules() if n.endswith('attn.q_neuron'))
    seen = []
    handles = [m.register_forward_hook(lambda m, i, o: seen.append(o.shape))
               for m in (bn, q_neuron)]  # e.g. the firing-rate recorder's hooks on neurons
    try:
        with execution_mode(model, 'fast'):
            model(x.contiguous(memory_format=torch.channels_last))
    finally:
        for h in handles:
            h.remove()
    assert len(seen) == 2  # the watched BN and neuron ran as modules
    if _c_available():
        assert train_fused  # the others fused
