"""The padding / masking norms survive MMEngine's sync_bn conversion (the one Runner applies for
cfg.sync_bn='torch'): their BatchNorm becomes a SyncBatchNorm, the padding and the mask stay, the
state-dict keys are those of nn.BatchNorm2d."""
import copy

import torch
from mmengine.model import convert_sync_batchnorm
from torch import nn

from mmspike.models.layers import BNAndPad, RepConv, SparseBatchNorm2d

BN_KEYS = ['weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked']


class Net(nn.Module):

    def __init__(self):
        super().__init__()
        self.rep = RepConv(4, 6)
        self.sbn = SparseBatchNorm2d(6)

    def forward(self, x, mask):
        return self.sbn(self.rep(x), mask)


def _trained():
    torch.manual_seed(0)
    net = Net()
    mask = torch.rand(2, 7, 7) < 0.5
    with torch.no_grad():  # running statistics that are not the identity
        for _ in range(3):
            net(torch.randn(2, 4, 7, 7) * 3 + 1, mask)
    return net.eval(), mask


def test_custom_norms_survive_mmengine_sync_bn_conversion():
    net, mask = _trained()
    x = torch.randn(2, 4, 7, 7)
    before = net(x, mask)
    keys = list(net.state_dict())
    state = copy.deepcopy(net.state_dict())
    converted = convert_sync_batchnorm(copy.deepcopy(net), 'torch')
    assert type(converted.rep.bn1) is BNAndPad and converted.rep.bn1.pad == 1
    assert type(converted.rep.bn1.bn) is nn.SyncBatchNorm
    assert type(converted.sbn) is SparseBatchNorm2d
    assert type(converted.sbn.bn) is nn.SyncBatchNorm
    assert type(converted.rep.bn2) is nn.SyncBatchNorm  # plain BNs are converted as before
    # the keys of nn.BatchNorm2d, unchanged by the conversion
    assert [k for k in keys if k.startswith('rep.bn1.')] == [f'rep.bn1.{k}' for k in BN_KEYS]
    assert [k for k in keys if k.startswith('sbn.')] == [f'sbn.{k}' for k in BN_KEYS]
    assert list(converted.state_dict()) == keys
    after = converted.eval()(x, mask)  # the conversion builds new BNs in training mode
    torch.testing.assert_close(after, before, rtol=0, atol=0)
    # the mask is kept (inactive sites are exact zeros) and so is the padding (a 7x7 map reaches
    # the depthwise 3x3 conv as 9x9: the output stays 7x7)
    assert after.shape == (2, 6, 7, 7)
    assert bool((after.permute(0, 2, 3, 1)[~mask] == 0).all())
    assert bool((after.permute(0, 2, 3, 1)[mask] != 0).any())
    # training forward (no process group: SyncBatchNorm computes local statistics) is the same,
    # running statistics included
    net.train(), converted.train()
    torch.testing.assert_close(converted(x, mask), net(x, mask), rtol=0, atol=0)
    for k, v in net.state_dict().items():
        torch.testing.assert_close(converted.state_dict()[k], v, rtol=0, atol=0, msg=k)
    # a BatchNorm2d state dict loads strictly into the wrappers, and back
    fresh = Net()
    fresh.load_state_dict(state, strict=True)
    plain = nn.BatchNorm2d(6)
    plain.load_state_dict({k[len('sbn.'):]: v for k, v in state.items() if k.startswith('sbn.')})
    torch.testing.assert_close(plain.running_mean, state['sbn.running_mean'])
    torch.testing.assert_close(fresh.sbn.running_var, state['sbn.running_var'])
    assert fresh.rep.bn1.num_batches_tracked == 3
