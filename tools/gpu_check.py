"""Device check of mmspike's GPU path (issue 13), run by ``tools/gpu_check.sh``.

Needs only torch (+ Triton on CUDA), mmengine and mmspike's core; spconv where installed. Sized to
finish in about 8 minutes on one H200. Each check prints ``CHECK <name>: PASS|FAIL|SKIP`` with its
figures; the exit status is 1 if any check fails. ``--dry-run`` runs the same code paths on the CPU
at tiny sizes (CI runs it), where the checks compare the CPU kernels (C) instead of Triton.

Checks:

* ``kernels``: every kernel variant (3 roundings x 2 windows x 3 code kinds x norms 1/3/4, backward
  with code bytes and with a window mask, decoding) of the automatic backend equals the torch ops
  bit for bit, in float32/float16/bfloat16; on CUDA the automatic backend must be Triton (its
  capability probe passed) and, with two or more GPUs, a launch on a non-current GPU is checked.
* ``neurons``: MultiSpike / ILIF / LIF fast path == plain path, forward and backward, bitwise.
* ``fast_plain_10m``: one AdamW training step of the E-SpikeFormer 10M classifier, fast == plain
  (loss, logits, every gradient and updated weight bitwise; deterministic algorithms).
* ``amp_10m``: bf16 autocast training steps of that classifier: fused spike-convs active,
  fast == plain within bf16 tolerance, finite losses.
* ``amp_detector``: bf16 autocast training steps of the flagship detector's backbone + neck
  (E-SpikeFormer 19M + SpikeFPN, 5 levels), peak memory fast vs plain.
* ``ssc``: spconv on the device (if importable): 3D submanifold spike conv vs a dense conv3d,
  2D depthwise spike sparse conv (spconv backend) vs the dense backend, forward and backward.
* ``benchmark``: training img/s and peak memory (``torch.cuda.max_memory_allocated``) of the 10M
  classifier, fast vs plain, fp32 and bf16 AMP; the neuron kernel's forward + backward GB/s
  (18 bytes per fp32 element) against a device copy (8 bytes per element).

Example::

    tools/gpu_check.sh                # on a GPU machine
    tools/gpu_check.sh --dry-run      # CPU, tiny sizes (CI)
"""
import argparse
import copy
import json
import os
import sys
import time
import traceback
import warnings
from typing import Callable, Dict, List

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from mmspike.models.backbones import ESpikeFormer  # noqa: E402
from mmspike.models.execution import set_execution_mode  # noqa: E402
from mmspike.models.necks import SpikeFPN, SpikeGlobalAveragePooling  # noqa: E402
from mmspike.models.neurons import ILIF, LIF, MultiSpike, kernels, set_finite_check  # noqa: E402


class Skip(Exception):
    """A check that cannot run here (says why)."""


class Ctx:
    """Device and sizes of this run."""

    def __init__(self, dry_run: bool) -> None:
        self.dry = dry_run
        self.device = torch.device('cpu' if dry_run else 'cuda')
        # The dry run builds a tiny arch of the same family (same blocks, same code paths).
        tiny = dict(ESpikeFormer.arch_settings['2m'], channels=(16, 32, 64, 64),
                    depths=(1, 1, 1, 1))
        self.cls_arch, self.det_arch = (tiny, tiny) if dry_run else ('10m', '19m')
        self.n_kernel = 4099 if dry_run else (1 << 20) + 3
        self.cls_batch, self.cls_size = (1, 32) if dry_run else (8, 224)
        self.det_batch, self.det_size = (1, 64) if dry_run else (2, 512)
        self.det_channels, self.det_steps = (32, 1) if dry_run else (256, 2)
        self.amp_steps = 2 if dry_run else 3
        self.bench_batch, self.bench_size = (1, 32) if dry_run else (32, 224)
        self.bench_iters, self.bench_warmup = (1, 0) if dry_run else (10, 3)
        self.n_gbs = 1 << 14 if dry_run else 1 << 26

    def sync(self) -> None:
        if self.device.type == 'cuda':
            torch.cuda.synchronize()


def _name(arch) -> str:
    return arch if isinstance(arch, str) else f"tiny {arch['channels']}"


CHECKS: List[Callable] = []


def check(fn: Callable) -> Callable:
    CHECKS.append(fn)
    return fn


def _exact(a: torch.Tensor, b: torch.Tensor) -> bool:
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.is_floating_point():
        return bool(((a == b) | (torch.isnan(a) & torch.isnan(b))).all())
    return torch.equal(a, b)


def _kernel_input(n: int, dtype: torch.dtype, device) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    special = torch.tensor([-1.0, -0.0, 0.0, 0.25, 0.5, 1.0, 1.5, 2.5, 3.5, 3.9999, 4.0, 4.5,
                            10.0, 0.49999997, float('nan')], dtype=torch.float64)
    x = torch.cat([special, torch.randn(n - special.numel(), generator=g,
                                        dtype=torch.float64) * 3])
    return x.to(dtype).to(device)


@check
def kernels_check(ctx: Ctx) -> Dict:
    dtypes = [torch.float32, torch.float16, torch.bfloat16]
    figures, bad = {}, []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        for dt in dtypes:
            figures[f'backend_{str(dt)[6:]}'] = kernels.fire_backend(
                torch.empty(0, dtype=dt, device=ctx.device))
    figures['probe_warnings'] = [str(w.message) for w in caught]
    if ctx.device.type == 'cuda':
        not_triton = {k: v for k, v in figures.items() if k.startswith('backend_')
                      and v != 'triton'}
        if not_triton:
            raise AssertionError(f'Triton not used: {not_triton}; probe failures: '
                                 f'{kernels.backend_failures()}')
    devices = [ctx.device]
    if ctx.device.type == 'cuda' and torch.cuda.device_count() > 1:
        devices.append(torch.device('cuda', 1))  # device guard: not the current device
    figures['devices'] = [str(d) for d in devices]
    for device in devices:
        for dt in dtypes:
            x = _kernel_input(ctx.n_kernel, dt, device)
            g = torch.randn(x.shape, generator=torch.Generator().manual_seed(1)).to(dt).to(device)
            for norm in (1.0, 3.0, 4.0):
                for rounding in (0, 1, 2):
                    for open_w in (False, True):
                        for code in ('full', 'window', None):
                            out, c = kernels.fire_forward(x, 4, norm, rounding, open_w, code)
                            ref, rc = kernels.fire_forward(x, 4, norm, rounding, open_w, code,
                                                           backend='torch')
                            if not _exact(out, ref) or (code and not _exact(c, rc)):
                                bad.append(f'forward {device} {dt} norm={norm} '
                                           f'rounding={rounding} open={open_w} code={code}')
                c = kernels.fire_forward(x, 4, norm)[1]
                for cc in (c, c >= kernels.WINDOW_BIT):
                    ref = kernels.fire_backward(g, cc, norm, backend='torch')
                    if not (_exact(kernels.fire_backward(g, cc, norm), ref) and _exact(
                            kernels.fire_backward(g.clone(), cc, norm, inplace=True), ref)):
                        bad.append(f'backward {device} {dt} norm={norm} code={cc.dtype}')
                if not _exact(kernels.decode_spikes(c, norm, dt),
                              kernels.decode_spikes(c, norm, dt, backend='torch')):
                    bad.append(f'decode {device} {dt} norm={norm}')
    ctx.sync()
    if bad:
        raise AssertionError(f'{len(bad)} kernel variants differ from the torch ops: {bad[:6]}')
    figures['variants_checked'] = len(devices) * len(dtypes) * 3 * (18 + 3)
    return figures


def _fwd_bwd(neuron, x, mode):
    set_finite_check(neuron, False)  # the inputs hold NaN on purpose
    set_execution_mode(neuron, mode)
    x = x.detach().clone().requires_grad_()
    out = neuron(x)
    out.backward(torch.linspace(-2, 3, out.numel(), device=x.device).view_as(out).to(out.dtype))
    return out.detach(), x.grad


@check
def neurons(ctx: Ctx) -> Dict:
    cases = {
        'MultiSpike': lambda: MultiSpike(),
        'MultiSpike-norm3-half-even-open': lambda: MultiSpike(norm=3.0, round_mode='half_even',
                                                              grad_window='open'),
        'MultiSpike-floor-plus-half': lambda: MultiSpike(round_mode='floor_plus_half'),
        'ILIF-T3': lambda: ILIF(),
        'LIF-T4': lambda: LIF(),
    }
    bad, n = [], 0
    for name, make in cases.items():
        for dt in (torch.float32, torch.bfloat16):
            T = 3 if 'T3' in name else 4 if 'T4' in name else 1
            x = _kernel_input(T * 2 * 8 * 9 * 9, dt, ctx.device).view(T, 2, 8, 9, 9)
            if name.startswith('LIF'):
                x = torch.nan_to_num(x)
            neuron = make().to(ctx.device)
            fast, plain = _fwd_bwd(neuron, x, 'fast'), _fwd_bwd(neuron, x, 'plain')
            n += 1
            if not (_exact(fast[0], plain[0]) and _exact(fast[1], plain[1])):
                bad.append(f'{name} {dt}')
    if bad:
        raise AssertionError(f'fast != plain: {bad}')
    return {'cases': n}


class Classifier(nn.Module):
    """The configs' ImageNet classifier: E-SpikeFormer -> spiking GAP -> Linear(1000)."""

    def __init__(self, arch='10m') -> None:
        super().__init__()
        self.backbone = ESpikeFormer(arch=arch, T=1, neuron=dict(type='MultiSpike',
                                                                 max_spikes=4))
        self.neck = SpikeGlobalAveragePooling(neuron=dict(type='MultiSpike', max_spikes=4,
                                                          norm=1))
        self.head = nn.Linear(self.backbone.out_channels[-1], 1000)

    def forward(self, x):
        return self.head(self.neck(self.backbone(x))[-1])


def _batch(ctx, batch, size, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 3, size, size, generator=g).to(ctx.device)
    y = torch.randint(0, 1000, (batch, ), generator=g).to(ctx.device)
    return x, y


def _train(model, mode, x, y, steps=1, amp=None):
    model = copy.deepcopy(model).train()
    set_execution_mode(model, mode)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses, logits, fused = [], None, 0
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        with torch.autocast(x.device.type, dtype=amp, enabled=amp is not None):
            logits = model(x)
            loss = F.cross_entropy(logits.float(), y)
        fused = _count_nodes(loss, '_SpikeConvsBackward')
        loss.backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        opt.step()
        losses.append(loss.detach())
    return losses, logits.detach(), grads, model.state_dict(), fused


def _count_nodes(t, name):
    seen, stack, n = set(), [t.grad_fn], 0
    while stack:
        fn = stack.pop()
        if fn is None or fn in seen:
            continue
        seen.add(fn)
        n += type(fn).__name__ == name
        stack += [f for f, _ in fn.next_functions]
    return n


@check
def fast_plain_10m(ctx: Ctx) -> Dict:
    torch.manual_seed(0)
    model = Classifier(ctx.cls_arch).to(ctx.device)
    x, y = _batch(ctx, ctx.cls_batch, ctx.cls_size)
    fast = _train(model, 'fast', x, y)
    plain = _train(model, 'plain', x, y)
    differing = [n for n in plain[2] if not torch.equal(plain[2][n], fast[2][n])]
    weights = [n for n in plain[3] if not torch.equal(plain[3][n], fast[3][n])]
    figures = {'arch': _name(ctx.cls_arch), 'loss': float(fast[0][0]),
               'fused_spike_convs': fast[4], 'params': sum(p.numel() for p in model.parameters())}
    if not torch.equal(fast[0][0], plain[0][0]) or not torch.equal(fast[1], plain[1]) \
            or differing or weights:
        raise AssertionError(
            f'fast != plain: loss {float(fast[0][0])} vs {float(plain[0][0])}, logits max diff '
            f'{float((fast[1] - plain[1]).abs().max())}, {len(differing)} gradients '
            f'({differing[:3]}), {len(weights)} updated tensors differ')
    if fast[4] < 8:
        raise AssertionError(f'only {fast[4]} fused spike-convs on the fast path')
    return figures


@check
def amp_10m(ctx: Ctx) -> Dict:
    torch.manual_seed(1)
    model = Classifier(ctx.cls_arch).to(ctx.device)
    x, y = _batch(ctx, ctx.cls_batch, ctx.cls_size, seed=1)
    first = _train(model, 'fast', x, y, steps=1, amp=torch.bfloat16)
    plain = _train(model, 'plain', x, y, steps=1, amp=torch.bfloat16)
    losses = [float(v) for v in _train(model, 'fast', x, y, ctx.amp_steps, torch.bfloat16)[0]]
    figures = {'arch': _name(ctx.cls_arch), 'fast_losses': losses,
               'plain_step1_loss': float(plain[0][0]), 'fused_spike_convs': first[4],
               'logits_max_diff': float((first[1].float() - plain[1].float()).abs().max()),
               'step1_bitwise': bool(torch.equal(first[1], plain[1])
                                     and all(torch.equal(first[2][n], plain[2][n])
                                             for n in plain[2]))}
    if not all(map(lambda v: v == v and abs(v) < 1e4, losses)):
        raise AssertionError(f'non-finite bf16 losses {losses}')
    if first[4] < 8:
        raise AssertionError(f'fused spike-convs not used under autocast ({first[4]})')
    torch.testing.assert_close(first[0][0], plain[0][0], rtol=2e-2, atol=2e-2)
    for n in plain[2]:
        torch.testing.assert_close(first[2][n], plain[2][n], rtol=5e-2, atol=5e-3, msg=n)
    return figures


class Detector(nn.Module):
    """The flagship detector's backbone + neck (configs/mmdet/_base_/models/
    spikeformer-19m_fpn.py)."""

    def __init__(self, arch='19m', out_channels: int = 256) -> None:
        super().__init__()
        self.backbone = ESpikeFormer(arch=arch, T=1, neuron=dict(type='MultiSpike',
                                                                 max_spikes=4),
                                     out_indices=(0, 1, 2, 3))
        self.neck = SpikeFPN(in_channels=list(self.backbone.out_channels),
                             in_strides=[4, 8, 16, 16], out_channels=out_channels, num_outs=5)

    def forward(self, x):
        return self.neck(self.backbone(x))


def _peak_reset(ctx):
    if ctx.device.type == 'cuda':
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        return torch.cuda.memory_allocated()
    return 0


def _peak(ctx, base):
    if ctx.device.type == 'cuda':
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - base) / 2**20
    return None  # the CPU has no allocator statistics


@check
def amp_detector(ctx: Ctx) -> Dict:
    torch.manual_seed(2)
    model = Detector(ctx.det_arch, ctx.det_channels).to(ctx.device)
    x = torch.randn(ctx.det_batch, 3, ctx.det_size, ctx.det_size, device=ctx.device)
    figures = {'arch': _name(ctx.det_arch), 'input': list(x.shape)}
    for mode in ('fast', 'plain'):
        m = copy.deepcopy(model).train()
        set_execution_mode(m, mode)
        opt = torch.optim.AdamW(m.parameters(), lr=1e-4)
        losses = []
        for step in range(ctx.det_steps):
            base = _peak_reset(ctx)
            opt.zero_grad(set_to_none=True)
            with torch.autocast(ctx.device.type, dtype=torch.bfloat16):
                outs = m(x)
                loss = sum(o.float().square().mean() for o in outs)
            loss.backward()
            opt.step()
            losses.append(loss.item())
        figures[f'{mode}_peak_mib'] = _peak(ctx, base)
        figures[f'{mode}_losses'] = losses
        figures[f'{mode}_levels'] = [tuple(o.shape) for o in outs]
        bad = [n for n, p in m.named_parameters() if p.grad is not None
               and not torch.isfinite(p.grad).all()]
        if bad or not all(v == v for v in losses):
            raise AssertionError(f'{mode}: non-finite loss {losses} or gradients {bad[:3]}')
        del m, opt, outs, loss
    if figures['fast_peak_mib']:
        figures['fast_over_plain_memory'] = figures['fast_peak_mib'] / figures['plain_peak_mib']
    return figures


@check
def ssc(ctx: Ctx) -> Dict:
    try:
        import spconv.pytorch as spconv
    except ImportError as e:
        raise Skip(f'spconv is not installed ({e}); setup_env.sh installs spconv-cuXY')
    from mmspike.models.layers import SpikeSparseConv2d, SpikeSparseConv3d
    torch.manual_seed(3)
    occ = torch.rand(2, 12, 12, 12, device=ctx.device) < 0.3
    idx = occ.nonzero().int().contiguous()
    feats = (torch.randn(idx.shape[0], 16, device=ctx.device) * 2 + 1).requires_grad_()
    x = spconv.SparseConvTensor(feats, idx, [12, 12, 12], 2)
    layer = SpikeSparseConv3d(16, 32, 3).to(ctx.device).eval()
    y = layer(x)
    spikes = layer.neuron(feats.unsqueeze(0)).squeeze(0)
    w = layer.conv.weight.permute(0, 4, 1, 2, 3)
    ref = F.conv3d(x.replace_feature(spikes).dense(), w, padding=1).permute(0, 2, 3, 4, 1)[occ]
    ref = layer.bn(ref)
    torch.testing.assert_close(y.features, ref, rtol=1e-4, atol=1e-4)
    grad = torch.randn_like(ref)
    gs = torch.autograd.grad((y.features * grad).sum(), feats)[0]
    gd = torch.autograd.grad((ref * grad).sum(), feats)[0]
    torch.testing.assert_close(gs, gd, rtol=1e-4, atol=1e-4)
    # 2D depthwise spike sparse conv: spconv backend (rulebook reuse) vs the dense backend
    dense = SpikeSparseConv2d(16, 16, 3, groups=16).to(ctx.device)
    sparse = copy.deepcopy(dense)
    sparse.backend = 'spconv'
    mask = torch.rand(2, 16, 16, device=ctx.device) < 0.4
    x2 = (torch.rand(1, 2, 16, 16, 16, device=ctx.device) * 6 - 1) * mask[None, :, None]
    xd, xs = x2.clone().requires_grad_(), x2.clone().requires_grad_()
    (yd, _), (ys, _) = dense(xd, mask), sparse(xs, mask)
    g2 = torch.randn_like(yd)
    (yd * g2).sum().backward()
    (ys * g2).sum().backward()
    torch.testing.assert_close(ys, yd, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(xs.grad, xd.grad, rtol=1e-4, atol=1e-5)
    return {'voxels': int(idx.shape[0]), 'spconv': getattr(sys.modules.get('spconv'),
                                                            '__version__', '?')}


def _sig(v: float) -> float:
    return float(f'{v:.3g}')  # three significant digits: small CPU figures stay non-zero


def _timed(ctx, fn, iters, warmup):
    for _ in range(warmup):
        fn()
    ctx.sync()
    t0 = time.perf_counter()
    for _ in range(iters):
        fn()
    ctx.sync()
    return (time.perf_counter() - t0) / iters


@check
def benchmark(ctx: Ctx) -> Dict:
    torch.manual_seed(4)
    base_model = Classifier(ctx.cls_arch).to(ctx.device)
    x, y = _batch(ctx, ctx.bench_batch, ctx.bench_size, seed=4)
    figures = {'setting': f'E-SpikeFormer {_name(ctx.cls_arch)} classifier, batch '
                          f'{ctx.bench_batch}, '
                          f'{ctx.bench_size}x{ctx.bench_size}, AdamW step'}
    for amp in (None, torch.bfloat16):
        for mode in ('fast', 'plain'):
            model = copy.deepcopy(base_model).train()
            set_execution_mode(model, mode)
            opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

            def step():
                opt.zero_grad(set_to_none=True)
                with torch.autocast(ctx.device.type, dtype=amp, enabled=amp is not None):
                    loss = F.cross_entropy(model(x).float(), y)
                loss.backward()
                opt.step()

            step()  # optimizer state exists before the peak is measured
            base = _peak_reset(ctx)
            step()
            peak = _peak(ctx, base)
            sec = _timed(ctx, step, ctx.bench_iters, ctx.bench_warmup)
            key = f"{mode}_{'bf16' if amp else 'fp32'}"
            figures[f'{key}_img_per_s'] = _sig(ctx.bench_batch / sec)
            figures[f'{key}_peak_mib'] = None if peak is None else _sig(peak)
            del model, opt
    # neuron kernel: forward + backward of a fused fp32 firing vs a device copy
    u = torch.randn(ctx.n_gbs, device=ctx.device) * 3
    g = torch.randn_like(u)
    neuron = MultiSpike().to(ctx.device)
    set_finite_check(neuron, False)
    backend = kernels.fire_backend(u)

    def fire():
        uu = u.detach().requires_grad_()
        neuron(uu.view(1, -1)).backward(g.view(1, -1))

    dst = torch.empty_like(u)
    t_fire = _timed(ctx, fire, ctx.bench_iters, ctx.bench_warmup)
    t_copy = _timed(ctx, lambda: dst.copy_(u), ctx.bench_iters, ctx.bench_warmup)
    figures.update({'kernel_backend': backend,
                    'neuron_fwd_bwd_gb_per_s': _sig(18 * u.numel() / t_fire / 1e9),
                    'copy_gb_per_s': _sig(8 * u.numel() / t_copy / 1e9),
                    'neuron_over_copy': _sig(18 * t_copy / (8 * t_fire))})
    return figures


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--dry-run', action='store_true',
                        help='run the same code paths on the CPU at tiny sizes')
    parser.add_argument('--json', help='write the results here')
    parser.add_argument('--only', default='', help='comma-separated check names')
    args = parser.parse_args(argv)
    if not args.dry_run and not torch.cuda.is_available():
        print('gpu_check: no CUDA device visible to torch (use --dry-run on a CPU machine)')
        return 2
    ctx = Ctx(args.dry_run)
    # Bitwise comparisons need deterministic kernels (cuDNN's atomics-based backward is not).
    os.environ.setdefault('CUBLAS_WORKSPACE_CONFIG', ':4096:8')
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    header = {'device': torch.cuda.get_device_name() if ctx.device.type == 'cuda' else 'cpu',
              'torch': torch.__version__, 'cuda': torch.version.cuda, 'dry_run': ctx.dry,
              'python': sys.version.split()[0]}
    try:
        import triton
        header['triton'] = triton.__version__
    except ImportError:
        header['triton'] = None
    print('gpu_check:', json.dumps(header))
    only = set(filter(None, args.only.split(',')))
    results, failed = {}, []
    t_all = time.perf_counter()
    for fn in CHECKS:
        name = fn.__name__.replace('_check', '')
        if only and name not in only:
            continue
        t0 = time.perf_counter()
        try:
            figures, status = fn(ctx), 'PASS'
        except Skip as e:
            figures, status = {'reason': str(e)}, 'SKIP'
        except Exception as e:  # report and go on: one failure must not hide the others
            figures, status = {'error': f'{type(e).__name__}: {e}'[:2000],
                               'traceback': traceback.format_exc()[-3000:]}, 'FAIL'
            failed.append(name)
        figures['seconds'] = round(time.perf_counter() - t0, 2)
        results[name] = dict(status=status, **figures)
        shown = {k: v for k, v in figures.items() if k != 'traceback'}
        print(f'CHECK {name}: {status} {json.dumps(shown, default=str)}', flush=True)
        if status == 'FAIL':
            print(figures['traceback'], flush=True)
    total = round(time.perf_counter() - t_all, 1)
    print(f'gpu_check: {len(results) - len(failed)}/{len(results)} checks without failure, '
          f'{total} s' + (f'; FAILED: {failed}' if failed else ''))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(dict(header, seconds=total, checks=results), f, indent=1, default=str)
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
