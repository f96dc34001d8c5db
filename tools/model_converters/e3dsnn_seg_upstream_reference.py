"""Record upstream E-3DSNN's SemanticKITTI segmentation network for
tests/test_points/test_e3dsnn_seg.py.

Builds upstream's ``E_3DSNN_seg`` (bollossom/E-3DSNN,
``classify_seg/pointcept/models/E_3DSNN/E_3DSNN_v1m1_base.py``, imported unmodified from the path
given) with the backbone arguments of its config ``semantic_kitti/semseg-3dsnn-v1m1-0-base``
(Pointcept's ``DefaultSegmentor`` adds no layer) and writes ``e3dsnn_semantickitti.json``: the
parameter count, the state-dict manifest (key, shape, role), the voxelized input (the real
SemanticKITTI scan excerpt of tests/data/semantickitti_sample) and upstream's per-voxel logits for
formula weights (``formula_state_dict`` of e3dsnn_upstream_reference.py).

Pointcept's registry, ``offset2batch`` and ``torch_geometric``'s ``scatter`` are the stand-ins of
e3dsnn_upstream_reference.py; ``voxel_grid`` (called by upstream's down blocks, result unused) is
a stand-in written here. Run it in a venv that has timm (e.g. /work/upstream/venv)::

    python tools/model_converters/e3dsnn_seg_upstream_reference.py \\
        --model-file /path/to/E-3DSNN/classify_seg/pointcept/models/E_3DSNN/E_3DSNN_v1m1_base.py \\
        --out tests/data/upstream_reference
"""
import argparse
import importlib.util
import json
import os
import os.path as osp
import shutil
import sys
import tempfile

import numpy as np
import torch

CONFIG = dict(  # the backbone dict of semseg-3dsnn-v1m1-0-base
    in_channels=4, num_classes=19, embed_channels=64, enc_channels=[64, 128, 128, 256],
    groups=[4, 4, 8, 16], enc_depth=[2, 2, 2, 2], dec_channels=[256, 256, 256, 256],
    point_grid_size=[[8, 12, 16, 16], [6, 9, 12, 12], [4, 6, 8, 8], [3, 4, 6, 6]],
    dec_depth=[2, 2, 2, 2], enc_num_ref=[16, 16, 16, 16])
SCAN = 'sequences/00/velodyne/000000.bin'

_VOXEL_GRID = (
    'import torch\n'
    'def voxel_grid(pos, size, batch=None, **kwargs):\n'
    '    cell = torch.div(pos, size, rounding_mode="floor").long()\n'
    '    if batch is not None:\n'
    '        cell = torch.cat([batch.long()[:, None], cell], 1)\n'
    '    return torch.unique(cell, dim=0, return_inverse=True)[1]\n')


def voxel_input(sample_root, grid=0.05, multiple=16):
    """Upstream's GridSample (grid 0.05, ``floor((xyz - min) / grid)``), the first point of each
    voxel, features xyz + intensity; each axis shifted so that max + 1 is a multiple of
    ``multiple``: the k2 s2 convs then drop no voxel with upstream's ``spatial_shape = max + 1``
    and mmspike's grid (padded to a multiple of 16) is the same."""
    pts = np.fromfile(osp.join(sample_root, SCAN), dtype=np.float32).reshape(-1, 4)
    g = np.floor((pts[:, :3] - pts[:, :3].min(0)) / grid).astype(np.int64)
    first = np.sort(np.unique(g, axis=0, return_index=True)[1])
    g = g[first]
    g = g + (-(g.max(0) + 1)) % multiple
    return g, pts[first]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--model-file', required=True, help="upstream's E_3DSNN_v1m1_base.py")
    parser.add_argument('--samples', default='tests/data/semantickitti_sample')
    parser.add_argument('--out', default='tests/data/upstream_reference')
    parser.add_argument('--source',
                        default='bollossom/E-3DSNN@dbe5d1731d3204850bd591a18f7255ca2d1b6712',
                        help='repository@commit recorded in the output')
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # spconv's native CPU kernels are wrong with more threads (#679)
    spec = importlib.util.spec_from_file_location(
        'cls_recorder', osp.join(osp.dirname(osp.abspath(__file__)),
                                 'e3dsnn_upstream_reference.py'))
    cls_recorder = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cls_recorder)
    tmp = tempfile.mkdtemp()
    stubs = dict(cls_recorder._STUBS)
    stubs['torch_geometric/nn/pool.py'] = _VOXEL_GRID
    stubs['pointcept/models/E_3DSNN/__init__.py'] = ''
    for rel, text in stubs.items():
        path = osp.join(tmp, rel)
        os.makedirs(osp.dirname(path), exist_ok=True)
        with open(path, 'w') as f:
            f.write(text)
    shutil.copy(args.model_file, osp.join(tmp, 'pointcept/models/E_3DSNN/E_3DSNN_v1m1_base.py'))
    sys.path.insert(0, tmp)
    from pointcept.models.E_3DSNN.E_3DSNN_v1m1_base import E_3DSNN_seg  # noqa: E402

    coords, feats = voxel_input(args.samples)
    inputs = dict(grid_coord=torch.from_numpy(coords), feat=torch.from_numpy(feats),
                  offset=torch.tensor([len(coords)]))
    torch.manual_seed(0)
    model = E_3DSNN_seg(**CONFIG)
    roles = {}
    for mname, m in model.named_modules():
        kind = 'bn' if isinstance(m, torch.nn.BatchNorm1d) else 'conv'
        for pname, _ in list(m.named_parameters(recurse=False)) + \
                list(m.named_buffers(recurse=False)):
            roles[f'{mname}.{pname}' if mname else pname] = f'{kind}.{pname}'
    manifest = [[k, list(v.shape), roles[k]] for k, v in model.state_dict().items()]
    num_params = sum(p.numel() for p in model.parameters())
    model.load_state_dict(cls_recorder.formula_state_dict(manifest))
    model.eval()
    with torch.no_grad():
        logits = model(inputs)
    ref = dict(
        source=f'{args.source} classify_seg/pointcept/models/E_3DSNN/E_3DSNN_v1m1_base.py '
               '(E_3DSNN_seg), built from classify_seg/configs/semantic_kitti/'
               'semseg-3dsnn-v1m1-0-base.py',
        config=CONFIG, num_parameters=num_params,
        num_buffers=sum(b.numel() for b in model.buffers()), state_dict=manifest,
        weights='formula (formula_state_dict of e3dsnn_upstream_reference.py): float64 draws '
                'from torch.Generator().manual_seed(0) in state-dict order',
        input=dict(file=SCAN, grid_size=0.05,
                   note='first point per 0.05 voxel, grid shifted so max + 1 is a multiple of 16',
                   grid_coord=coords.tolist(), feat=feats.tolist()),
        logits=logits.double().tolist())
    out = osp.join(args.out, 'e3dsnn_semantickitti.json')
    with open(out, 'w') as f:
        json.dump(ref, f)
    print(f'{num_params} parameters, {len(manifest)} state-dict entries, logits '
          f'{tuple(logits.shape)} -> {out}')
    shutil.rmtree(tmp)


if __name__ == '__main__':
    main()
