"""E3DSNN classifier on real ModelNet40 sample shapes: data path, forward/backward, errors, SOPs."""
from pathlib import Path

import pytest
import torch

from mmspike.models.layers.spconv_support import spconv_available

pytestmark = pytest.mark.skipif(not spconv_available(), reason='spconv is not installed')

ROOT = Path(__file__).resolve().parents[2]
TXT = ROOT / 'tests/data/modelnet40_sample/modelnet40_normal_resampled'
PIPELINE = [dict(type='mmspike.NormalizePoints'),
            dict(type='mmspike.SpikeVoxelCoding', grid_size=0.02, mode='first'),
            dict(type='mmspike.PackPointsInputs')]


def classifier(arch='tiny'):
    import mmspike.points  # noqa: F401
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS
    init_default_scope('mmpretrain')
    return MODELS.build(dict(
        type='ImageClassifier',
        data_preprocessor=dict(type='mmspike.PointsDataPreprocessor'),
        backbone=dict(type='mmspike.E3DSNN', arch=arch),
        neck=dict(type='mmspike.SparseGlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=40, in_channels=128,
                  loss=dict(type='LabelSmoothLoss', label_smooth_val=0.2, mode='original'))))


def batch(split='train'):
    from mmengine.dataset import pseudo_collate

    from mmspike.points.datasets import ModelNet40Dataset
    ds = ModelNet40Dataset(str(TXT), split=split, pipeline=PIPELINE)
    return pseudo_collate([ds[0], ds[1]])


def test_train_step_and_predict_on_real_shapes():
    torch.manual_seed(0)
    model = classifier()
    data = model.data_preprocessor(batch(), True)
    x = data['inputs']
    assert x.batch_size == 2 and all(s % 16 == 0 for s in x.spatial_shape)
    losses = model(**data, mode='loss')
    loss = losses['loss']
    assert torch.isfinite(loss) and loss > 0
    loss.backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum()]
    assert not no_grad, f'parameters without gradient: {no_grad}'
    model.eval()
    with torch.no_grad():
        preds = model(**model.data_preprocessor(batch('test')), mode='predict')
    assert [p.gt_label.item() for p in preds] == [0, 8]
    assert all(p.pred_score.shape == (40, ) for p in preds)


def test_raw_point_lists_are_voxelized_by_the_backbone():
    """Without the SpikeVoxelCoding transform the backbone voxelizes [N, 6] clouds itself."""
    from mmspike.points.datasets import ModelNet40Dataset
    model = classifier().eval()
    ds = ModelNet40Dataset(str(TXT), split='test', pipeline=[
        dict(type='mmspike.NormalizePoints'), dict(type='mmspike.PackPointsInputs')])
    from mmengine.dataset import pseudo_collate
    data = model.data_preprocessor(pseudo_collate([ds[0], ds[1]]))
    assert isinstance(data['inputs'], list) and data['inputs'][0].shape == (1000, 6)
    with torch.no_grad():
        assert model(data['inputs'], mode='tensor').shape == (2, 40)


def test_errors():
    from mmspike.points.models import E3DSNN, PointsDataPreprocessor, sparse_batch
    with pytest.raises(ValueError, match='unknown arch'):
        E3DSNN('huge')
    with pytest.raises(ValueError, match='batch augments'):
        PointsDataPreprocessor(batch_augments=dict(augments=[dict(type='Mixup', alpha=1.)]))
    with pytest.raises(ValueError, match='sample 1 has no voxel'):
        sparse_batch([torch.zeros(2, 3, dtype=torch.int32), torch.zeros(0, 3, dtype=torch.int32)],
                     [torch.zeros(2, 6), torch.zeros(0, 6)])
    with pytest.raises(TypeError, match='voxel dicts'):
        PointsDataPreprocessor()(dict(inputs=torch.zeros(2, 3), data_samples=None))


def test_sops_on_sparse_input_match_the_rulebook():
    """count_sops on E3DSNN: every sparse conv is counted once, its MACs equal spconv's own
    rulebook size x C_in x C_out, and the SOPs of a spike-fed submanifold conv equal C_out x the
    3x3x3 box sums of the spike-count grid at the active voxels (a dense recomputation)."""
    import torch.nn.functional as F

    from mmspike.analysis import count_sops
    model = classifier().eval()
    svc = model.backbone.svc
    svc.conv1.bn.bias.data.fill_(1.5)  # untrained weights barely fire: make conv2's input fire
    x = model.data_preprocessor(batch('test'))['inputs']
    report = count_sops(model, x)  # ImageClassifier's default mode is 'tensor'
    n = report.meta['num_images']
    rows = {r['name']: r for r in report.layers}
    convs = [n for n, m in model.named_modules() if type(m).__name__ in
             ('SubMConv3d', 'SparseConv3d')]
    assert len(convs) == 3 + 4 * 4 and set(convs) <= set(rows)
    assert not any(r.startswith('backbone') and r not in convs for r in rows)  # no double count
    # spconv's rulebook of the same input (CPU: native algorithm, pair counts per offset)
    with torch.no_grad():
        feats = model.backbone(x)[0]
    for key, data in feats.indice_dict.items():
        pairs = int(data.indice_pair_num.sum())
        if data.is_subm:  # spconv stores one offset of each symmetric pair; the centre is implicit
            pairs = 2 * pairs + data.indices.shape[0]
        for name, m in model.named_modules():
            if getattr(m, 'indice_key', None) == key and name in rows:
                assert rows[name]['flops'] * n == pairs * m.in_channels * m.out_channels, name
    assert rows['backbone.svc.conv1.conv']['input'] == 'real'
    assert rows['backbone.svc.conv1.conv']['sops'] == 0
    assert all(rows[c]['input'] == 'spike' and 0 <= rows[c]['sops'] <= 4 * rows[c]['flops']
               for c in convs[1:])
    assert rows['head.fc']['input'] == 'real'
    with torch.no_grad():
        counts = svc.conv2.neuron(svc.conv1(x).features[None])[0].sum(1)
    assert counts.sum() > 0
    grid = torch.zeros([x.batch_size, 1] + list(x.spatial_shape))
    idx = x.indices.long()
    grid[idx[:, 0], 0, idx[:, 1], idx[:, 2], idx[:, 3]] = counts
    box = F.conv3d(grid, torch.ones(1, 1, 3, 3, 3), padding=1)[:, 0]
    expected = 16 * box[idx[:, 0], idx[:, 1], idx[:, 2], idx[:, 3]].sum() / n
    assert rows['backbone.svc.conv2.conv']['sops'] == pytest.approx(float(expected), rel=1e-9)


def test_get_sops_tool_on_the_sample_config(tmp_path, monkeypatch):
    """tools/analysis_tools/get_sops.py reads the sample config's test split (a voxel batch of
    two shapes cut to the first one by --num-images 1) and counts every sparse conv."""
    import importlib.util

    from mmspike.points.datasets import ModelNet40Dataset
    monkeypatch.chdir(ROOT)  # the config's data_root is relative to the repository
    spec = importlib.util.spec_from_file_location(
        '_tool_get_sops', ROOT / 'tools/analysis_tools/get_sops.py')
    get_sops = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(get_sops)
    report = get_sops.main(['configs/points/e3dsnn-t_modelnet40_sample.py', '--num-images', '1',
                            '--batch-size', '2', '--mode', 'tensor', '--out-dir', str(tmp_path)])
    rows = {r['name']: r for r in report.layers}
    assert report.meta['num_images'] == 1
    assert sum(r['op'] == 'sparse_conv3d' for r in report.layers) == 19
    first = ModelNet40Dataset(str(TXT), split='test', pipeline=[
        dict(type='mmspike.NormalizePoints'), dict(type='mmspike.SpikeVoxelCoding')])[0]
    assert rows['backbone.svc.conv1.conv']['input_shape'] == [len(first['voxel_coords']), 6]
    assert rows['head.fc']['op'] == 'linear' and (tmp_path / 'sops.json').is_file()
