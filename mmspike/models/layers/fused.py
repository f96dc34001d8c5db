"""Fast-path fusion of a spiking neuron with the convs it feeds.

:func:`spike_convs` runs ``neuron -> conv_1, ..., conv_n`` (convs sharing the spikes of one
neuron, e.g. the Q/K/V projections) as one autograd node that keeps a single code byte per input
element for backward (:mod:`mmspike.models.neurons.kernels`): the spike count rebuilds the
conv's input for the weight gradient, the window bit gives the neuron's gradient. The plain
composition keeps the float membrane (for ``clamp``) *and* the float spikes (for the conv): eight
bytes per element instead of one. Forward and gradients are bit-identical to it: the convs and
their backward run the same ATen kernels on the same values (except the forward of
channels-last float32 stride-1 convs, which :mod:`.conv_fwd` computes skipping zero spikes, and
the weight and bias gradients of channels-last float32 kxk and depthwise convs, which
:mod:`.conv_grad` computes faster; both in ATen's own summation order, where their self-checks
pass), and the gradients of convs sharing one input are summed in autograd's order. Under
autocast (bf16 / fp16, the ``--amp`` training path) the convs run in the autocast dtype forward
and backward, as the plain composition runs them, while the spikes stay exact integer counts in
the same one-byte code; the kernels run on the neuron's ``kernel_backend``. A BatchNorm before the
neuron can run inside the firing pass, bit-identically (``bn`` of :func:`spike_convs`): in
inference with its running statistics; in training (channels-last) with ATen's batch
statistics, its backward then inside the neuron's, the neuron's gradient never stored. (BN
folding into the conv weights, exact only up to rounding, is
:func:`~mmspike.models.layers.rep_conv.fuse_conv_bn`.)
"""
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..neurons import IntegerNeuron
from ..neurons import kernels
from . import conv_fwd, conv_grad
from .time import fold_time


def _observed(modules: Sequence[nn.Module]) -> bool:
    """Whether anything watches these modules' forward (hooks of the firing-rate recorder, the
    SOP counter, a user), a torch function mode is active or a tracer / compiler runs: then the
    layers must run as separate modules so the observers see them."""
    if (torch.overrides._is_torch_function_mode_enabled() or torch.jit.is_tracing()
            or torch.compiler.is_compiling()):
        return True
    g = nn.modules.module
    if g._global_forward_hooks or g._global_forward_pre_hooks:
        return True
    return any(sub._forward_hooks or sub._forward_pre_hooks
               for m in modules for sub in m.modules())


def _convs(s: Tensor, weights: Sequence[Tensor], biases: Sequence[Optional[Tensor]],
           geometry: Sequence[tuple], c_kernels: bool) -> Tuple[Tensor, ...]:
    """``F.conv2d(s, w, b, *geo)`` for each conv; with the C kernels, stride-1 convs of
    channels-last float32 spikes skip the zeros in ATen's own order (:mod:`.conv_fwd`: the same
    bits)."""
    conv = conv_fwd.conv2d if c_kernels else F.conv2d
    return tuple(conv(s, w, b, *geo) for w, b, geo in zip(weights, biases, geometry))


def _fusable_conv(conv: nn.Module) -> bool:
    return (type(conv) is nn.Conv2d and conv.padding_mode == 'zeros'
            and not isinstance(conv.padding, str))


class _SpikeConvs(torch.autograd.Function):

    @staticmethod
    def forward(ctx, x: Tensor, spec: tuple, geometry: tuple, backend: str, on_nonfinite,
                *params: Optional[Tensor]):
        D, norm, rounding, open_window = spec
        weights, biases = params[0::2], params[1::2]
        # the neuron's non-finite check runs in the firing pass (NaN would become 0 spikes)
        s, code = kernels.fire_forward(x, D, norm, rounding, open_window,
                                       code='full' if any(ctx.needs_input_grad) else None,
                                       backend=backend, on_nonfinite=on_nonfinite)
        # Under autocast F.conv2d casts its inputs to the autocast dtype here, as in the plain
        # composition; backward repeats those casts (it runs outside autocast).
        outs = _convs(s, weights, biases, geometry,
                      kernels.fire_backend(s, backend=backend) == 'c')
        del s  # only the code bytes outlive the forward
        _save_conv_meta(ctx, spec, geometry, x.dtype, backend, outs, biases)
        ctx.save_for_backward(code, *weights)
        return outs

    @staticmethod
    def backward(ctx, *grads: Optional[Tensor]):
        code, *weights = ctx.saved_tensors
        grad_s, param_grads = _conv_backward(ctx, code, weights, grads, first=5)
        # grad_s is this function's own temporary: mask it in place (one allocation less)
        grad_x = kernels.fire_backward(grad_s, code, ctx.spec[1], inplace=True,
                                       backend=ctx.backend) if grad_s is not None else None
        return (grad_x, None, None, None, None, *param_grads)


def _conv_backward(ctx, code: Tensor, weights: Sequence[Tensor], grads: Sequence[Optional[Tensor]],
                   first: int) -> Tuple[Optional[Tensor], List[Optional[Tensor]]]:
    """The convs' backward from the spikes rebuilt out of ``code``: the spikes' gradient (None
    when no input gradient is wanted or none flows) and the convs' parameter gradients;
    ``ctx.needs_input_grad[first]`` is the first conv weight's."""
    norm = ctx.spec[1]
    s = kernels.decode_spikes(code, norm, ctx.dtype, backend=ctx.backend)
    need_x = ctx.needs_input_grad[0]
    # the conv weight-gradient kernel is a C kernel: it runs where the neurons' C one does
    c_kernels = kernels.fire_backend(code, ctx.dtype, ctx.backend, op=('dec', )) == 'c'
    param_grads: List[Optional[Tensor]] = [None] * (2 * len(weights))
    grad_s = None
    # Autograd runs the backward of the conv created last first and adds the gradients of a
    # shared input in arrival order; summing in the same order keeps the bits.
    for i in reversed(range(len(weights))):
        g = grads[i]
        if g is None:
            continue
        stride, padding, dilation, groups = ctx.geometry[i]
        w, cdt = weights[i], ctx.conv_dtypes[i]
        mask = [need_x, ctx.needs_input_grad[first + 2 * i],
                ctx.has_bias[i] and ctx.needs_input_grad[first + 1 + 2 * i]]
        # The conv's own dtype (autocast's), then each gradient back to its tensor's dtype:
        # what autograd does through the casts of the plain composition.
        g, sc, wc = g.to(cdt), s.to(cdt), w.to(cdt)
        own_wgrad = mask[1] and c_kernels and conv_grad.applies(
            sc, g, wc, stride, padding, dilation, groups)
        gi = gw = gb = None
        if mask[0] or not own_wgrad:
            gi, gw, gb = torch.ops.aten.convolution_backward(
                g, sc, wc, [w.shape[0]] if ctx.has_bias[i] else None, stride, padding,
                dilation, False, [0] * len(stride), groups,
                [mask[0], mask[1] and not own_wgrad, mask[2] and not own_wgrad])
        if own_wgrad:  # ATen's bits, faster (conv_grad's docstring)
            gw, gb = conv_grad.conv2d_param_grads(g, sc, wc, stride, padding, dilation,
                                                  groups, bias=mask[2])
        param_grads[2 * i] = None if gw is None else gw.to(w.dtype)
        param_grads[2 * i + 1] = None if gb is None else gb.to(ctx.bias_dtypes[i])
        if need_x:
            gi = gi.to(ctx.dtype)
            grad_s = gi if grad_s is None else grad_s + gi
    return grad_s, param_grads


def _save_conv_meta(ctx, spec: tuple, geometry: tuple, dtype: torch.dtype, backend: str,
                    outs: Sequence[Tensor], biases: Sequence[Optional[Tensor]]) -> None:
    ctx.spec, ctx.geometry, ctx.dtype, ctx.backend = spec, geometry, dtype, backend
    ctx.conv_dtypes = tuple(o.dtype for o in outs)
    ctx.has_bias = tuple(b is not None for b in biases)
    ctx.bias_dtypes = tuple(None if b is None else b.dtype for b in biases)


class _BNSpikeConvs(torch.autograd.Function):
    """``conv_i(neuron(batch_norm(x)))`` with a training-mode BatchNorm: the normalisation runs
    in the firing pass, its backward in the neuron's (:func:`kernels.fire_bn_train_forward` /
    :func:`kernels.fire_bn_train_backward`); keeps ``x`` (as BN keeps it) and the code bytes,
    neither the BN output nor the spikes."""

    @staticmethod
    def forward(ctx, x: Tensor, bn_weight: Optional[Tensor], bn_bias: Optional[Tensor],
                bn_state: tuple, spec: tuple, geometry: tuple, backend: str, on_nonfinite,
                *params: Optional[Tensor]):
        weights, biases = params[0::2], params[1::2]
        s, saved = _bn_fire_forward(ctx, x, bn_weight, bn_bias, bn_state, spec, backend,
                                    on_nonfinite)
        outs = _convs(s, weights, biases, geometry, True)
        del s
        _save_conv_meta(ctx, spec, geometry, x.dtype, backend, outs, biases)
        ctx.save_for_backward(*saved, *weights)
        return outs

    @staticmethod
    def backward(ctx, *grads: Optional[Tensor]):
        saved, weights = ctx.saved_tensors[:5], ctx.saved_tensors[5:]
        grad_s, param_grads = _conv_backward(ctx, saved[0], weights, grads, first=8)
        gx = gw = gb = None
        if grad_s is not None:  # grad_s is this function's own temporary: dx overwrites it
            gx, gw, gb = _bn_fire_backward(ctx, grad_s, saved, inplace=True)
        return (gx, gw, gb, None, None, None, None, None, *param_grads)


def _bn_fire_forward(ctx, x: Tensor, bn_weight: Optional[Tensor], bn_bias: Optional[Tensor],
                     bn_state: tuple, spec: tuple, backend: str, on_nonfinite
                     ) -> Tuple[Tensor, tuple]:
    """The spikes of ``neuron(batch_norm(x))`` (training BN) and the tensors its backward
    needs, with ``ctx.spec`` / ``eps`` / ``backend`` set."""
    D, norm, rounding, open_window = spec
    running_mean, running_var, momentum, eps = bn_state
    fired = kernels.fire_bn_train_forward(
        x, bn_weight, bn_bias, running_mean, running_var, momentum, eps, D, norm, rounding,
        open_window, backend=backend, on_nonfinite=on_nonfinite)
    if fired is None:  # the caller checked that the kernel applies: a changed backend table
        raise RuntimeError('mmspike: the fused training batch norm no longer applies')
    s, code, mean, invstd = fired
    ctx.spec, ctx.eps, ctx.backend = spec, eps, backend
    return s, (code, x, bn_weight, mean, invstd)


def _bn_fire_backward(ctx, grad: Tensor, saved: Sequence[Tensor], inplace: bool) -> tuple:
    """The gradients of ``x``, the BN weight and bias for the spikes' gradient ``grad``."""
    code, x, bn_weight, mean, invstd = saved
    _, norm, rounding, open_window = ctx.spec
    return kernels.fire_bn_train_backward(
        grad, code, x, mean, invstd, bn_weight, norm, ctx.eps, ctx.needs_input_grad[:3],
        rounding, open_window, inplace=inplace, backend=ctx.backend)


class _BNFire(torch.autograd.Function):
    """``neuron(batch_norm(x))`` with a training-mode BatchNorm in one firing pass, the float
    spikes returned (for a consumer other than a conv); keeps ``x`` and the code bytes."""

    @staticmethod
    def forward(ctx, x: Tensor, bn_weight: Optional[Tensor], bn_bias: Optional[Tensor],
                bn_state: tuple, spec: tuple, backend: str, on_nonfinite) -> Tensor:
        s, saved = _bn_fire_forward(ctx, x, bn_weight, bn_bias, bn_state, spec, backend,
                                    on_nonfinite)
        ctx.save_for_backward(*saved)
        return s

    @staticmethod
    def backward(ctx, grad: Tensor):
        # autograd's gradient may be shared: not overwritten
        return (*_bn_fire_backward(ctx, grad, ctx.saved_tensors, inplace=False), None, None,
                None, None)


def bn_fire(x: Tensor, bn: nn.Module, neuron: nn.Module,
            observed: Sequence[nn.Module] = ()) -> Optional[Tensor]:
    """``neuron(bn(x))`` on the fast path with the ``BatchNorm2d`` inside the firing pass, the
    same bits: in training (channels-last) with its batch statistics and its backward inside the
    neuron's (:func:`~mmspike.models.neurons.kernels.fire_bn_train_forward`); in inference
    (running statistics, no gradient wanted) with its inference formula
    (:func:`~mmspike.models.neurons.kernels.fire_bn_forward`).

    Args:
        x (Tensor): ``[T * B, C, H, W]`` channels-last input of ``bn``.
        bn (nn.Module): The norm layer.
        neuron (nn.Module): The neuron after it.
        observed (Sequence[nn.Module]): Further modules the fusion bypasses; if any has hooks,
            nothing is fused.

    Returns:
        Tensor | None: the spikes ``[T * B, C, H, W]``, or None where this does not fuse (an
        inference-mode BN with a gradient wanted, another layout or neuron, hooks, ...): then
        nothing ran.
    """
    if not isinstance(neuron, IntegerNeuron) or x.dim() != 4 \
            or _observed([bn, neuron, *observed]):
        return None
    spec = neuron.fused_spec(x)
    if spec is None or spec[0] > kernels.MAX_CODED_SPIKES:
        return None
    bn_params = _inference_bn(bn, x, ())
    if bn_params is not None:
        return kernels.fire_bn_forward(x, bn_params, *spec[:3], backend=neuron.kernel_backend,
                                       on_nonfinite=neuron.nonfinite_handler())
    state = _training_bn(bn, x, spec, neuron.kernel_backend)
    if state is None:
        return None
    return _BNFire.apply(x, bn.weight, bn.bias, state, spec, neuron.kernel_backend,
                         neuron.nonfinite_handler())


def _inference_bn(bn: nn.Module, x: Tensor, params: Sequence[Optional[Tensor]]
                  ) -> Optional[kernels.BNParams]:
    """The parameters of ``bn`` when it normalises ``x`` with running statistics and no
    gradient is wanted, so its inference formula can run inside the firing pass; else None."""
    if (type(bn) not in (nn.BatchNorm2d, nn.SyncBatchNorm) or bn.training
            or bn.running_mean is None or x.dim() != 4):
        return None
    tensors = [x, *params, bn.weight, bn.bias]
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors):
        return None  # a backward follows: BN keeps its own autograd node
    return kernels.BNParams(bn.weight, bn.bias, bn.running_mean, bn.running_var, bn.eps)


def _training_bn(bn: nn.Module, x: Tensor, spec: tuple, backend: str) -> Optional[tuple]:
    """``(running_mean, running_var, momentum, eps)`` as ``bn``'s forward hands them to
    ``F.batch_norm`` when it normalises ``x`` with batch statistics and the fused training
    kernels take ``x`` (after the module's own bookkeeping, ``num_batches_tracked``, as its
    forward does it); else None, and nothing changed."""
    if type(bn) is not nn.BatchNorm2d or torch.is_autocast_enabled(x.device.type):
        return None
    if not (bn.training or (bn.running_mean is None and bn.running_var is None)):
        return None
    track = not bn.training or bn.track_running_stats
    running_mean, running_var = (bn.running_mean, bn.running_var) if track else (None, None)
    D, _, rounding, open_window = spec
    if not kernels.fuses_training_bn(x, bn.weight, bn.bias, running_mean, running_var, D,
                                     rounding, open_window, backend):
        return None
    momentum = 0.0 if bn.momentum is None else bn.momentum
    if bn.training and bn.track_running_stats and bn.num_batches_tracked is not None:
        bn.num_batches_tracked.add_(1)
        if bn.momentum is None:  # cumulative moving average
            momentum = 1.0 / float(bn.num_batches_tracked)
    F._verify_batch_size(x.size())  # F.batch_norm's error for one value per channel
    return running_mean, running_var, momentum, bn.eps


def spike_convs(x: Tensor, neuron: nn.Module,
                convs: Sequence[nn.Module],
                observed: Sequence[nn.Module] = (),
                bn: Optional[nn.Module] = None,
                overwrite_input: bool = False) -> Optional[Tuple[Tensor, ...]]:
    """``conv_i(neuron(x))`` (or ``conv_i(neuron(bn(x)))``) for every conv, fused, on the fast
    path.

    Args:
        x (Tensor): ``[T, B, C, H, W]`` input of the neuron, or of ``bn`` when it is given.
        neuron (nn.Module): The neuron (fused when it is an :class:`IntegerNeuron` whose
            :meth:`~IntegerNeuron.fused_spec` accepts ``x``).
        convs (Sequence[nn.Module]): ``nn.Conv2d`` modules fed by the spikes.
        observed (Sequence[nn.Module]): Further modules the fusion bypasses; if any has hooks,
            nothing is fused.
        bn (nn.Module, optional): A norm layer between ``x`` and the neuron. An inference-mode
            ``BatchNorm2d`` with no gradient wanted runs inside the firing pass
            (:func:`~mmspike.models.neurons.kernels.fire_bn_forward`: the same bits, one pass
            less), and so does a training-mode one on channels-last input, forward and
            backward (:func:`~mmspike.models.neurons.kernels.fire_bn_train_forward`);
            otherwise it runs as itself first. Defaults to None.
        overwrite_input (bool): ``x`` is the caller's temporary, used by nothing else: the
            fused inference BN + firing pass may write the spikes over it (no new tensor of its
            size to allocate and fault in). Defaults to False.

    Returns:
        tuple[Tensor] | None: the folded conv outputs ``[T * B, C_i, H_i, W_i]``, or None when
        the layers must run unfused (plain path, another neuron, temporal state, spike-driven
        mode, a non-standard conv, or hooks watching them); the caller then runs the modules
        (``bn`` included: nothing of them ran).
    """
    if not isinstance(neuron, IntegerNeuron) or x.dim() != 5:
        return None
    spec = neuron.fused_spec(x)
    if spec is None or spec[0] > kernels.MAX_CODED_SPIKES:
        return None
    around = [neuron, *convs, *observed, *([] if bn is None else [bn])]
    if not all(_fusable_conv(c) for c in convs) or _observed(around):
        return None
    params, geometry = [], []
    for c in convs:
        params += [c.weight, c.bias]
        geometry.append((tuple(c.stride), tuple(c.padding), tuple(c.dilation), c.groups))
    xf, _ = fold_time(x)

    def run_convs(s: Tensor) -> Tuple[Tensor, ...]:  # spikes made without an autograd node
        return _convs(s, params[0::2], params[1::2], geometry,
                      kernels.fire_backend(s, backend=neuron.kernel_backend) == 'c')

    if bn is not None:
        bn_params = _inference_bn(bn, xf, params)
        D, norm, rounding, _ = spec
        s = None if bn_params is None else kernels.fire_bn_forward(
            xf, bn_params, D, norm, rounding, backend=neuron.kernel_backend,
            on_nonfinite=neuron.nonfinite_handler(), out=xf if overwrite_input else None)
        if s is not None:
            return run_convs(s)
        state = None if bn_params is not None else _training_bn(bn, xf, spec,
                                                                neuron.kernel_backend)
        if state is not None:
            return _BNSpikeConvs.apply(xf, bn.weight, bn.bias, state, spec, tuple(geometry),
                                       neuron.kernel_backend, neuron.nonfinite_handler(),
                                       *params)
        xf = bn(xf)
    if not (torch.is_grad_enabled()
            and any(t is not None and t.requires_grad for t in (xf, *params))):
        # no backward follows: no code bytes, no autograd node (its ctx would ask for both)
        D, norm, rounding, open_window = spec
        s, _ = kernels.fire_forward(xf, D, norm, rounding, open_window, code=None,
                                    backend=neuron.kernel_backend,
                                    on_nonfinite=neuron.nonfinite_handler())
        return run_convs(s)
    return _SpikeConvs.apply(xf, spec, tuple(geometry), neuron.kernel_backend,
                             neuron.nonfinite_handler(), *params)
