"""Re-parameterisable convolutions and BatchNorm folding.

Blocks that train as several convs and BNs but compute one linear map at inference: the border-
padded BatchNorm :class:`BNAndPad`, Meta-SpikeFormer's / SpikeYOLO's :class:`RepConv`, the
large E-SpikeFormer family's :class:`LinearPair`; and :func:`fuse_conv_bn`, which folds inference
BatchNorms into the preceding convs.
"""
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .conv import SpikeConvBN
from .wrapped_bn import WrappedBatchNorm

__all__ = ['BNAndPad', 'RepConv', 'LinearPair', 'fuse_conv_bn']


class BNAndPad(WrappedBatchNorm):
    """BatchNorm, then pad by ``pad`` pixels with the value BN gives a zero input.

    The value is what the BN of a zero-padded input would produce (from the running statistics), so
    a following unpadded conv equals a padded conv on the pre-BN map and the branch can be
    re-parameterised into a single 3x3 conv. A :class:`~.wrapped_bn.WrappedBatchNorm`: the same
    state-dict keys as ``nn.BatchNorm2d``, and MMEngine's ``sync_bn`` conversion synchronises the
    statistics without dropping the padding.

    Args:
        num_features (int): Channels C.
        pad (int): Border width. Defaults to 1.
        **kwargs: ``eps``, ``momentum``, ``affine``, ``track_running_stats`` of the BatchNorm.
    """

    def __init__(self, num_features: int, pad: int = 1, **kwargs) -> None:
        super().__init__(num_features, **kwargs)
        self.pad = pad

    def forward(self, x: Tensor) -> Tensor:
        y = self.batch_norm(x)
        if self.pad == 0:
            return y
        scale = self.weight.detach() / torch.sqrt(self.running_var + self.eps)
        fill = (self.bias.detach() - self.running_mean * scale).view(1, -1, 1, 1).to(y.dtype)
        border = F.pad(y.new_zeros(1, 1, *y.shape[-2:], dtype=torch.bool), [self.pad] * 4,
                       value=True)
        return torch.where(border, fill, F.pad(y, [self.pad] * 4))

    def extra_repr(self) -> str:
        return super().extra_repr() + f', pad={self.pad}'


class RepConv(nn.Module):
    """Meta-SpikeFormer's re-parameterisable projection on ``[N, C, H, W]``:
    ``1x1 conv -> BN (border-padded) -> DW 3x3 -> 1x1 conv -> BN`` (no biases)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, in_channels, 1, bias=False)
        self.bn1 = BNAndPad(in_channels, pad=1)
        self.dwconv = nn.Conv2d(in_channels, in_channels, 3, padding=0, groups=in_channels,
                                bias=False)
        self.conv2 = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.bn2(self.conv2(self.dwconv(self.bn1(self.conv1(x)))))


class LinearPair(nn.Module):
    """Two stacked 1x1 convs with BN and no neuron in between (large E-SpikeFormer family),
    ``C_in -> hidden -> C_out`` on ``[N, C, H, W]``; re-parameterisable into one 1x1 conv."""

    def __init__(self, in_channels: int, hidden_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, hidden_channels, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(hidden_channels)
        self.conv2 = nn.Conv2d(hidden_channels, out_channels, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.after_conv1(self.conv1(x))

    def after_conv1(self, y: Tensor) -> Tensor:
        """The rest of the pair after ``conv1`` (the fused fast path runs ``conv1`` itself)."""
        return self.bn2(self.conv2(self.bn1(y)))


# ----------------------------------------------------------------------------- BN folding
def _fold(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> None:
    """Fold ``bn`` (inference statistics) into ``conv`` in place."""
    w = conv.weight.detach()
    scale = bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps) if bn.affine else \
        1.0 / torch.sqrt(bn.running_var + bn.eps)
    shift = bn.bias.detach() if bn.affine else torch.zeros_like(bn.running_mean)
    bias = conv.bias.detach() if conv.bias is not None else torch.zeros_like(bn.running_mean)
    conv.weight = nn.Parameter(w * scale.view(-1, 1, 1, 1).to(w.dtype))
    conv.bias = nn.Parameter(((bias - bn.running_mean) * scale + shift).to(w.dtype))


def _foldable(conv: nn.Module, bn: nn.Module) -> bool:
    # Exact types: subclasses (sparse convs) and wrappers (BNAndPad pads) change what the pair
    # computes.
    return (type(conv) is nn.Conv2d and type(bn) is nn.BatchNorm2d
            and bn.track_running_stats and bn.running_var is not None
            and conv.out_channels == bn.num_features)


def fuse_conv_bn(model: nn.Module) -> int:
    """Fold every BatchNorm that directly follows a conv into it, for inference.

    The pairs are those whose data flow is known: ``SpikeConvBN`` (conv -> bn), ``nn.Sequential``
    children (a ``Conv2d`` followed by a ``BatchNorm2d``, e.g. the Q/K/V projections) and
    ``LinearPair`` / ``RepConv`` (conv1 -> bn1 / conv2 -> bn2). The BN is replaced by an
    identity and the conv gets the folded weight and bias, so the model computes the same
    function (up to float rounding) with one pass less per conv. Only for evaluation: the model
    must be in eval mode (training BN uses batch statistics, which cannot be folded).

    Returns:
        int: the number of BatchNorms folded.
    """
    if model.training:
        raise RuntimeError('fuse_conv_bn folds inference statistics: call model.eval() first')
    count = 0
    for module in list(model.modules()):
        pairs = []
        if isinstance(module, SpikeConvBN):
            pairs.append(('conv', 'bn'))
        elif isinstance(module, LinearPair):
            pairs += [('conv1', 'bn1'), ('conv2', 'bn2')]
        elif isinstance(module, RepConv):
            pairs.append(('conv2', 'bn2'))  # bn1 pads its output: not a plain BN
        elif type(module) is nn.Sequential:
            names = list(module._modules)
            pairs += [(a, b) for a, b in zip(names, names[1:])]
        for conv_name, bn_name in pairs:
            conv, bn = getattr(module, conv_name), getattr(module, bn_name)
            if _foldable(conv, bn):
                _fold(conv, bn)
                setattr(module, bn_name, nn.Identity())
                count += 1
    return count
