"""Record reference outputs of the upstream research code, for the converter fidelity tests.

The converters (``sdtv3_to_mmspike.py``, ``spikeyolo_to_mmspike.py``) are tested against what the
upstream code really computes, without shipping upstream code or released weights:

* a **manifest** lists every tensor of the state dict that upstream's own model code writes
  (key, shape, dtype, in registration order);
* the weights are a **formula** both sides can compute: every tensor is drawn from a
  ``torch.Generator`` seeded by a hash of its upstream key (:func:`formula_tensor`; BN running
  statistics are randomised too, so the eval-mode BN is not an identity);
* upstream's model, loaded strictly with these weights and put in eval mode, runs on a fixed input
  (:func:`fixed_input`) in float64 and float32; its outputs and a summary of the spikes of every
  neuron call (element count and integer spike total) are recorded.

A test rebuilds the same weights from the manifest, converts them with the shipped converter,
loads them strictly into the shipped config's model and compares with the recording.

Recording (run OUTSIDE this repository's environment, in a venv that can run the upstream code;
this file imports upstream modules from the paths given, it contains none of their code)::

    python tools/model_converters/upstream_reference.py sdtv3 \\
        --repo /work/upstream/v3 --out tests/data/upstream_reference
    python tools/model_converters/upstream_reference.py spikeyolo \\
        --repo /work/upstream/spikeyolo --out tests/data/upstream_reference

Only :func:`formula_tensor`, :func:`formula_state_dict`, :func:`fixed_input` and
:func:`load_reference` are used by the tests; they need nothing but torch.
"""
import argparse
import hashlib
import json
import math
import os
import os.path as osp
import sys
import types
from collections import OrderedDict
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor

FORMULA_VERSION = 1
DTYPES = {'float64': torch.float64, 'float32': torch.float32, 'float16': torch.float16,
          'int64': torch.int64}


# ----------------------------------------------------------------------------- the formula
def key_seed(key: str) -> int:
    """63-bit seed of a state-dict key (first 8 bytes of its SHA-256, little endian)."""
    return int.from_bytes(hashlib.sha256(key.encode('utf-8')).digest()[:8], 'little') >> 1


def formula_tensor(key: str, shape: Sequence[int], dtype: str = 'float32') -> Tensor:
    """The reference value of the tensor ``key``: drawn in float64 from a generator seeded by
    :func:`key_seed`, then cast to ``dtype`` (so float64 and float32 models get the same numbers
    up to that cast).

    * ``num_batches_tracked`` (int64): 0.
    * ``running_var``: ``U(0.5, 1.5)``; ``running_mean``: ``N(0, 0.1^2)``.
    * other 0-/1-D tensors named ``bias``: ``N(0.1, 0.3^2)``; any other 0-/1-D tensor (BN weight,
      layer scale): ``U(0.6, 1.4)``.
    * weights of 2 or more dims: ``N(0, 1) * 1.5 / sqrt(fan_in)``, ``fan_in = numel / shape[0]``.
    * ``*dfl.conv.weight`` (YOLOv8's fixed DFL weights): ``0 .. reg_max - 1``.
    """
    shape = tuple(int(s) for s in shape)
    if dtype not in DTYPES:
        raise ValueError(f'{key}: unknown dtype {dtype!r}, expected one of {list(DTYPES)}')
    if DTYPES[dtype] == torch.int64:
        return torch.zeros(shape, dtype=torch.int64)
    if key.endswith('dfl.conv.weight'):  # YOLOv8's fixed DFL integral weights 0..reg_max-1
        return torch.arange(shape[1], dtype=torch.float64).view(shape).to(DTYPES[dtype])
    g = torch.Generator().manual_seed(key_seed(key))
    name = key.rsplit('.', 1)[-1]
    if name == 'running_var':
        t = 0.5 + torch.rand(shape, generator=g, dtype=torch.float64)
    elif name == 'running_mean':
        t = 0.1 * torch.randn(shape, generator=g, dtype=torch.float64)
    elif len(shape) <= 1:
        if name == 'bias':
            t = 0.1 + 0.3 * torch.randn(shape, generator=g, dtype=torch.float64)
        else:
            t = 0.6 + 0.8 * torch.rand(shape, generator=g, dtype=torch.float64)
    else:
        fan_in = max(1, math.prod(shape) // max(1, shape[0]))
        t = torch.randn(shape, generator=g, dtype=torch.float64) * (1.5 / math.sqrt(fan_in))
    return t.to(DTYPES[dtype])


def formula_state_dict(manifest: Sequence[Sequence], float_dtype: Optional[torch.dtype] = None
                       ) -> 'OrderedDict[str, Tensor]':
    """The state dict of a manifest (``[key, shape, dtype]`` rows) filled by
    :func:`formula_tensor`; floating tensors are cast to ``float_dtype`` when given."""
    out = OrderedDict()
    for key, shape, dtype in manifest:
        t = formula_tensor(key, shape, dtype if DTYPES[dtype] == torch.int64 else 'float64')
        if t.is_floating_point():
            t = t.to(float_dtype or DTYPES[dtype])
        out[key] = t
    return out


def fixed_input(shape: Sequence[int], dtype: torch.dtype = torch.float64, seed: int = 0
                ) -> Tensor:
    """The reference input: ``N(0, 1)`` drawn in float64 from ``torch.Generator`` seeded with
    ``seed``, cast to ``dtype``."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(tuple(shape), generator=g, dtype=torch.float64).to(dtype)


def manifest_of(state: Dict[str, Tensor]) -> List[list]:
    return [[k, list(v.shape), str(v.dtype).replace('torch.', '')] for k, v in state.items()]


#: ATen's CPU capability on the machine that recorded the references without a
#: ``cpu_capability`` entry (a 2-core AMD EPYC VM). ATen and oneDNN pick their kernels, and so
#: their summation orders, by it: float64 outputs are bit-exact only on the same capability (on
#: another, the same integer spikes and outputs equal to float64 rounding).
RECORDED_CAPABILITY = 'AVX2'


def recorded_capability(meta: dict) -> str:
    """ATen's CPU capability where reference ``meta`` was recorded."""
    return meta.get('cpu_capability', RECORDED_CAPABILITY)


def same_capability(meta: dict) -> bool:
    """Whether this machine runs ATen's kernels of the recording machine's capability."""
    return recorded_capability(meta) == torch.backends.cpu.get_cpu_capability()


def load_reference(directory: str, name: str) -> Tuple[dict, Optional[dict]]:
    """``(manifest json, recorded outputs or None)`` of reference ``name`` in ``directory``."""
    with open(osp.join(directory, f'{name}.json')) as f:
        meta = json.load(f)
    pt = osp.join(directory, f'{name}.pt')
    outputs = torch.load(pt, map_location='cpu', weights_only=True) if osp.isfile(pt) else None
    return meta, outputs


# ----------------------------------------------------------------------------- recording
def _spike_recorder(model: torch.nn.Module, is_neuron: Callable, norm_of: Callable):
    """Forward hooks on the neuron modules; each call appends ``[numel, integer spike sum]``."""
    calls: List[List[int]] = []

    def hook(mod, inputs, out):
        s = out.detach().double() * norm_of(mod)
        r = torch.round(s)
        assert torch.equal(r, s), f'{type(mod).__name__} emitted non-integer spikes'
        calls.append([int(out.numel()), int(r.sum().item())])

    handles = [m.register_forward_hook(hook) for m in model.modules() if is_neuron(m)]
    return calls, handles


def _run(model, state_for, x_shape, is_neuron, norm_of, forward=None) -> dict:
    """Evaluate in float64 and float32 on :func:`fixed_input`, with the weights
    ``state_for(dtype)`` loaded strictly into the model converted to that dtype (float64 runs
    get the formula's float64 values, not float32-rounded ones)."""
    model.eval()
    res = {}
    for dt_name, dt in (('float64', torch.float64), ('float32', torch.float32)):
        model.to(dt)
        model.load_state_dict(state_for(dt), strict=True)
        calls, handles = _spike_recorder(model, is_neuron, norm_of)
        with torch.no_grad():
            x = fixed_input(x_shape, dt)
            out = forward(model, x) if forward else model(x)
        for h in handles:
            h.remove()
        res[f'logits_{dt_name}'] = out.detach().clone()
        res[f'spikes_{dt_name}'] = torch.tensor(calls, dtype=torch.int64).reshape(-1, 2)
    return res


def _save(out_dir: str, name: str, meta: dict, manifest: list, outputs: Optional[dict]):
    os.makedirs(out_dir, exist_ok=True)
    meta = dict(meta, name=name, formula_version=FORMULA_VERSION, torch=torch.__version__,
                cpu_capability=torch.backends.cpu.get_cpu_capability(),
                num_tensors=len(manifest), manifest=manifest)
    with open(osp.join(out_dir, f'{name}.json'), 'w') as f:
        json.dump(meta, f, indent=0)
    if outputs is not None:
        torch.save(outputs, osp.join(out_dir, f'{name}.pt'))
    print(f'{name}: {len(manifest)} tensors'
          + ('' if outputs is None else
             ', logits ' + str(tuple(outputs['logits_float64'].shape))
             + f", {len(outputs['spikes_float64'])} neuron calls, spike totals fp64/fp32 "
             f"{int(outputs['spikes_float64'][:, 1].sum())}/"
             f"{int(outputs['spikes_float32'][:, 1].sum())}"))


def _import_patched(path: str, modname: str, patches: Sequence[Tuple[str, str]] = ()):
    """Import the module file ``path`` as ``modname`` after exact text substitutions (each must
    match exactly once), so a recording can document every deviation from the upstream file."""
    with open(path) as f:
        src = f.read()
    for old, new in patches:
        if src.count(old) != 1:
            raise RuntimeError(f'patch target found {src.count(old)} times in {path}: {old!r}')
        src = src.replace(old, new)
    mod = types.ModuleType(modname)
    mod.__file__ = path
    sys.modules[modname] = mod
    exec(compile(src, path, 'exec'), mod.__dict__)
    return mod


def _git_head(repo: str) -> str:
    import subprocess
    return subprocess.check_output(['git', '-C', repo, 'rev-parse', 'HEAD'], text=True).strip()


def _bind_block_shapes(mod, model) -> None:
    """The large family's ``MS_Block.forward`` (``spikformer.py``) reads ``T, B, C, N`` that it
    never assigns (its shape line is commented out: a ``NameError`` as shipped; ``MAE_SDT.py``
    has the line, PR #4). A pre-hook sets them, as module globals, to the block input's shape."""
    def pre_hook(block, args):
        T, B, C, N = args[0].shape
        mod.__dict__.update(T=T, B=B, C=C, N=N)

    for m in model.modules():
        if isinstance(m, mod.MS_Block):
            m.register_forward_pre_hook(pre_hook)


def _released_83m_width(mod, model) -> None:
    """The released 83M file's pre-mixer is ``C -> 1.5C -> C`` (V3 issue #9) where the code's
    ``RepConv2`` is ``C -> C -> C``: give every block upstream's own ``RepConv`` (the same two
    ``Conv1d + BN1d`` pairs, 1.5C wide) as its pre-mixer."""
    for m in model.modules():
        if isinstance(m, mod.MS_Block) and hasattr(m, 'rep_conv'):
            c = m.rep_conv.conv1[0].in_channels
            m.rep_conv = mod.RepConv(c, c)


def record_sdtv3(repo: str, out_dir: str, which: Sequence[str]) -> None:
    cls_root = osp.join(repo, 'SDT_V3', 'Classification')
    commit = _git_head(repo)
    common = dict(upstream='BICLab/Spike-Driven-Transformer-V3', commit=commit)
    x_shape = (2, 3, 32, 32)
    if any(w.startswith('base') for w in which):
        sys.path.insert(0, osp.join(cls_root, 'Model_Base'))
        up = _import_patched(osp.join(cls_root, 'Model_Base', 'models.py'), 'up_models')
        for name, ctor in (('base_2m', 'Efficient_Spiking_Transformer_t'),
                           ('base_10m', 'Efficient_Spiking_Transformer_m')):
            if name not in which:
                continue
            torch.manual_seed(0)
            model = getattr(up, ctor)()
            manifest = manifest_of(model.state_dict())
            outputs = _run(model, lambda dt: formula_state_dict(manifest, dt), x_shape,
                           lambda m: isinstance(m, up.MultiSpike), lambda m: m.Norm)
            outputs['input_shape'] = torch.tensor(x_shape)
            _save(out_dir, name, dict(common, file='SDT_V3/Classification/Model_Base/models.py',
                                      constructor=ctor, patches=[], D=4), manifest, outputs)
        sys.path.pop(0)
    large = [w for w in which if w.startswith(('large', 'mae'))]
    if large:
        root = osp.join(cls_root, 'Model_Large')
        sys.path.insert(0, root)
        for name in large:
            if name == 'mae_173m':
                mod = _import_patched(osp.join(root, 'MAE_SDT.py'), 'up_mae')
                torch.manual_seed(0)
                model = mod.spikmae_12_768()
                manifest = manifest_of(model.state_dict())
                _save(out_dir, name, dict(common, file='SDT_V3/Classification/Model_Large/'
                                          'MAE_SDT.py', constructor='spikmae_12_768',
                                          patches=[]), manifest, None)
                continue
            ctor, D, fixes = {
                'large_83m': ('spikformer12_512', 4, []),
                'large_83m_released_1x8': ('spikformer12_512', 8, [_released_83m_width]),
                'large_173m_1x8': ('spikformer12_768', 8, []),
            }[name]
            # D is the module constant T ("1x4"), bound at import: the 1x8 weights need T=8
            patches = [('T=4\n', f'T={D}\n')] if D != 4 else []
            mod = _import_patched(osp.join(root, 'spikformer.py'), f'up_{name}', patches)
            torch.manual_seed(0)
            model = getattr(mod, ctor)()
            for fix in fixes:
                fix(mod, model)
            _bind_block_shapes(mod, model)
            manifest = manifest_of(model.state_dict())
            outputs = _run(model, lambda dt: formula_state_dict(manifest, dt), x_shape,
                           lambda m: isinstance(m, mod.Multispike), lambda m: m.norm)
            outputs['input_shape'] = torch.tensor(x_shape)
            _save(out_dir, name, dict(common, file='SDT_V3/Classification/Model_Large/'
                                      'spikformer.py', constructor=ctor, D=D,
                                      patches=[list(p) for p in patches],
                                      fixes=['_bind_block_shapes'] + [f.__name__ for f in fixes]),
                  manifest, outputs)
        sys.path.pop(0)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='Record upstream reference manifests and outputs')
    p.add_argument('family', choices=['sdtv3', 'spikeyolo'])
    p.add_argument('--repo', required=True, help='a checkout of the upstream repository')
    p.add_argument('--out', required=True, help='output directory')
    p.add_argument('--only', nargs='*', default=None, help='reference names to record')
    return p.parse_args(argv)


SDTV3_NAMES = ('base_2m', 'base_10m', 'large_83m', 'large_83m_released_1x8', 'large_173m_1x8',
               'mae_173m')


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(1)
    if args.family == 'sdtv3':
        record_sdtv3(args.repo, args.out, args.only or SDTV3_NAMES)
    else:
        record_spikeyolo(args.repo, args.out, args.only or SPIKEYOLO_NAMES)


SPIKEYOLO_NAMES = ('spikeyolo_n', 'spikeyolo_s', 'spikeyolo_tiny')


#: SpikeYOLO references: scale -> (yaml scale letter, width override or None, input size).
#: ``tiny`` is scale n at 1/6 of its width (channels 8-64): small enough to commit as the pickled,
#: float16, ultralytics-style checkpoint the converter must read without executing it.
SPIKEYOLO_CASES = {'spikeyolo_n': ('n', None, 64), 'spikeyolo_s': ('s', None, 64),
                   'spikeyolo_tiny': ('n', 0.0625, 64)}


def record_spikeyolo(repo: str, out_dir: str, which: Sequence[str]) -> None:
    import copy
    import yaml
    sys.path.insert(0, repo)
    # Upstream's DetectionModel moves itself to CUDA while it is built; keep it on the CPU.
    torch.nn.Module.cuda = lambda self, device=None: self
    torch.Tensor.cuda = lambda self, *args, **kwargs: self
    from ultralytics.nn.tasks import DetectionModel
    from ultralytics.nn.modules import yolo_spikformer as ys
    commit = _git_head(repo)
    yaml_rel = 'ultralytics/cfg/models/v8/snn_yolov8.yaml'
    for name in which:
        scale, width, size = SPIKEYOLO_CASES[name]
        with open(osp.join(repo, yaml_rel)) as f:
            cfg = yaml.safe_load(f)
        cfg['scale'] = scale
        if width is not None:
            cfg['scales'][scale] = [cfg['scales'][scale][0], width, cfg['scales'][scale][2]]
        torch.manual_seed(0)
        model = DetectionModel(copy.deepcopy(cfg), verbose=False)
        manifest = manifest_of(model.state_dict())
        x_shape = (2, 3, size, size)

        def forward(m, x):
            y, feats = m(x)
            return torch.cat([f.flatten(2) for f in feats], 2)  # [B, 4 * 16 + nc, anchors]

        def is_neuron(m):
            return isinstance(m, ys.mem_update)

        outputs = _run(model, lambda dt: formula_state_dict(manifest, dt), x_shape, is_neuron,
                       lambda m: 1.0, forward)
        outputs['input_shape'] = torch.tensor(x_shape)
        outputs['level_sizes'] = torch.tensor([(size // s) ** 2 for s in (8, 16, 32)])
        meta = dict(upstream='BICLab/SpikeYOLO', commit=commit, file=yaml_rel, scale=scale,
                    width_override=width, num_blocks=len(model.model),
                    blocks=[type(b).__name__ for b in model.model],
                    outputs='per-level raw head maps cat(box 64, cls nc) flattened and '
                            'concatenated over levels (strides 8, 16, 32), before DFL')
        _save(out_dir, name, meta, manifest, outputs)
        if width is not None:
            # what a released file is: the ultralytics checkpoint dict with the model object in
            # float16 (ultralytics' own save format; the model pickled by reference to its classes)
            half = OrderedDict((k, v.half() if v.is_floating_point() else v)
                               for k, v in formula_state_dict(manifest).items())
            model.float()
            model.load_state_dict(half, strict=True)
            ckpt = dict(epoch=-1, best_fitness=None, model=copy.deepcopy(model).half(),
                        ema=None, updates=None, optimizer=None,
                        train_args=dict(model='snn_yolov8n.yaml', imgsz=640, batch=40),
                        date='recorded', version='8.0.197')
            torch.save(ckpt, osp.join(out_dir, f'{name}_ultralytics_fp16.pt'))
            outputs16 = _run(model, lambda dt: OrderedDict(
                (k, v.to(dt) if v.is_floating_point() else v) for k, v in half.items()),
                x_shape, is_neuron, lambda m: 1.0, forward)
            torch.save(dict(outputs16, input_shape=torch.tensor(x_shape)),
                       osp.join(out_dir, f'{name}_ultralytics_fp16_outputs.pt'))
    sys.path.pop(0)


if __name__ == '__main__':
    main()
