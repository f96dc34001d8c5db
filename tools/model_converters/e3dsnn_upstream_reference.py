"""Record upstream E-3DSNN's ModelNet40 classifier for tests/test_points/test_e3dsnn_upstream.py.

Builds upstream's ``SNN_3dv`` (bollossom/E-3DSNN, ``classify_seg/pointcept/models/sparse_unet/
E_3DSNN.py``, imported unmodified from the path given) with the backbone arguments of its configs
``cls-E3DSNN-v1m1-0-T`` / ``-S`` (Pointcept's ``DefaultClassifier`` adds no layer: its ``cls_head``
is commented out) and writes, per variant, ``e3dsnn_{t,s}_modelnet40.json``: the parameter count,
the state-dict manifest (key, shape, role), the voxelized input (two real ModelNet40 shapes of the
bundled sample) and upstream's logits for formula weights (:func:`formula_state_dict`).

The file imports only three things from Pointcept besides spconv, timm and torch; they are replaced
here by stand-ins written for this script (a dict registry, ``offset2batch``, and
``torch_geometric``'s ``scatter`` mean; ``voxel_grid`` is imported but unused by ``SNN_3dv``).
Run it in a venv that has timm (e.g. /work/upstream/venv), outside this repository's environment::

    python tools/model_converters/e3dsnn_upstream_reference.py \\
        --model-file /path/to/E-3DSNN/classify_seg/pointcept/models/sparse_unet/E_3DSNN.py \\
        --out tests/data/upstream_reference
"""
import argparse
import json
import math
import os
import os.path as osp
import shutil
import sys
import tempfile

import numpy as np
import torch

CONFIGS = {  # the backbone dicts of cls-E3DSNN-v1m1-0-T / -S
    't': dict(in_channels=6, num_classes=40, embed_channels=16, enc_channels=[16, 32, 64, 128],
              enc_depth=[1, 1, 1, 1]),
    's': dict(in_channels=6, num_classes=40, embed_channels=24, enc_channels=[24, 48, 96, 160],
              enc_depth=[1, 1, 1, 1]),
}
SHAPES = ['airplane/airplane_0126', 'chair/chair_0391']

_STUBS = {
    'pointcept/__init__.py': '',
    'pointcept/models/__init__.py': '',
    'pointcept/models/sparse_unet/__init__.py': '',
    'pointcept/models/builder.py': (
        'class _Registry(dict):\n'
        '    def register_module(self, name=None, module=None, force=False):\n'
        '        def deco(cls):\n'
        '            self[name or cls.__name__] = cls\n'
        '            return cls\n'
        '        return deco\n'
        'MODELS = _Registry()\n'),
    'pointcept/models/utils/__init__.py': (
        'import torch\n'
        'def offset2batch(offset):\n'
        '    counts = torch.diff(offset, prepend=offset.new_zeros(1))\n'
        '    return torch.arange(len(counts), device=offset.device).repeat_interleave(counts)\n'),
    'torch_geometric/__init__.py': '',
    'torch_geometric/nn/__init__.py': '',
    'torch_geometric/nn/pool.py': (
        'def voxel_grid(*args, **kwargs):\n'
        '    raise NotImplementedError("not used by SNN_3dv")\n'),
    'torch_geometric/utils.py': (
        'import torch\n'
        'def scatter(src, index, reduce="mean", dim=0):\n'
        '    assert reduce == "mean" and dim == 0\n'
        '    n = int(index.max()) + 1\n'
        '    out = src.new_zeros((n,) + src.shape[1:]).index_add_(0, index, src)\n'
        '    cnt = torch.bincount(index, minlength=n).clamp(min=1).to(src.dtype)\n'
        '    return out / cnt.view(-1, *([1] * (src.dim() - 1)))\n'),
}


def formula_state_dict(manifest):
    """Weights both sides compute: float64 draws of ``torch.Generator().manual_seed(0)`` in
    state-dict order (``num_batches_tracked`` skipped), by role: conv weight N(0, 2 / fan_in),
    BN weight 1 + 0.2 r, BN bias 0.3 + 0.2 r, running mean 0.1 r, running var 1 + 0.25 |r|, conv
    bias 0.1 r; cast to float32."""
    g = torch.Generator().manual_seed(0)
    out = {}
    for key, shape, role in manifest:
        if key.endswith('num_batches_tracked'):
            out[key] = torch.tensor(0)
            continue
        r = torch.randn(shape, generator=g, dtype=torch.float64)
        r = {'conv.weight': lambda: r * math.sqrt(2.0 / math.prod(shape[1:])),
             'bn.weight': lambda: 1 + 0.2 * r, 'bn.bias': lambda: 0.3 + 0.2 * r,
             'bn.running_mean': lambda: 0.1 * r, 'bn.running_var': lambda: 1 + 0.25 * r.abs(),
             'conv.bias': lambda: 0.1 * r}[role]()
        out[key] = r.float()
    return out


def voxel_input(sample_root, n=300, grid=0.01):
    """First ``n`` lines of each shape, centred and scaled into the unit sphere, and the first
    point of each ``grid`` voxel (coordinates shifted to start at 0)."""
    coords, feats = [], []
    for shape in SHAPES:
        d = np.loadtxt(osp.join(sample_root, shape + '.txt'), delimiter=',',
                       dtype=np.float32)[:n]
        c = d[:, :3] - d[:, :3].mean(0)
        c = c / np.max(np.sqrt((c**2).sum(1)))
        g = np.floor(c / grid).astype(np.int64)
        g = g - g.min(0)
        first = np.sort(np.unique(g, axis=0, return_index=True)[1])
        coords.append(g[first])
        feats.append(np.concatenate([c, d[:, 3:6]], 1)[first])
    return coords, feats


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--model-file', required=True, help="upstream's sparse_unet/E_3DSNN.py")
    parser.add_argument('--samples', default='tests/data/modelnet40_sample/'
                        'modelnet40_normal_resampled', help='resampled-layout sample folder')
    parser.add_argument('--out', default='tests/data/upstream_reference')
    parser.add_argument('--source',
                        default='bollossom/E-3DSNN@dbe5d1731d3204850bd591a18f7255ca2d1b6712',
                        help='repository@commit recorded in the output')
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # spconv's native CPU kernels are wrong with more threads (#679)
    tmp = tempfile.mkdtemp()
    for rel, text in _STUBS.items():
        path = osp.join(tmp, rel)
        os.makedirs(osp.dirname(path), exist_ok=True)
        with open(path, 'w') as f:
            f.write(text)
    shutil.copy(args.model_file, osp.join(tmp, 'pointcept/models/sparse_unet/E_3DSNN.py'))
    sys.path.insert(0, tmp)
    from pointcept.models.sparse_unet.E_3DSNN import SNN_3dv  # noqa: E402
    coords, feats = voxel_input(args.samples)
    offset = torch.tensor(np.cumsum([len(c) for c in coords]))
    inputs = dict(grid_coord=torch.from_numpy(np.concatenate(coords)),
                  feat=torch.from_numpy(np.concatenate(feats)), offset=offset)
    for variant, cfg in CONFIGS.items():
        torch.manual_seed(0)
        model = SNN_3dv(**cfg)
        roles = {}
        for mname, m in model.named_modules():
            kind = 'bn' if isinstance(m, torch.nn.BatchNorm1d) else 'conv'
            for pname, _ in list(m.named_parameters(recurse=False)) + \
                    list(m.named_buffers(recurse=False)):
                roles[f'{mname}.{pname}' if mname else pname] = f'{kind}.{pname}'
        manifest = [[k, list(v.shape), roles[k]] for k, v in model.state_dict().items()]
        num_params = sum(p.numel() for p in model.parameters())
        model.load_state_dict(formula_state_dict(manifest))
        model.eval()
        rates = []
        for m in model.modules():
            if type(m).__name__ == 'Multispike':
                m.register_forward_hook(lambda mod, a, o: rates.append(float(o.mean())))
        with torch.no_grad():
            logits = model(inputs)
        ref = dict(
            source=f'{args.source} classify_seg/pointcept/models/sparse_unet/E_3DSNN.py (SNN_3dv),'
                   f' built from classify_seg/configs/modelnet40/cls-E3DSNN-v1m1-0-'
                   f'{variant.upper()}.py',
            config=cfg, num_parameters=num_params,
            num_buffers=sum(b.numel() for b in model.buffers()), state_dict=manifest,
            weights='formula (formula_state_dict): float64 draws from '
                    'torch.Generator().manual_seed(0) in state-dict order',
            input=dict(files=[s.split('/')[1] for s in SHAPES], points_per_file=300,
                       grid_size=0.01,
                       note='first 300 lines of each file, centred and scaled to the unit '
                            'sphere, first point per 0.01 voxel',
                       grid_coord=[c.tolist() for c in coords], feat=[f.tolist() for f in feats]),
            logits=logits.double().tolist(), spike_rates=rates)
        out = osp.join(args.out, f'e3dsnn_{variant}_modelnet40.json')
        with open(out, 'w') as f:
            json.dump(ref, f)
        print(f'{variant}: {num_params} parameters, logits {tuple(logits.shape)} -> {out}')
    shutil.rmtree(tmp)


if __name__ == '__main__':
    main()
