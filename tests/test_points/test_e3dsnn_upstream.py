"""E3DSNN-T/-S against upstream's own model (bollossom/E-3DSNN ``SNN_3dv`` built from the
ModelNet40 configs ``cls-E3DSNN-v1m1-0-T/-S``), recorded outside this repository:
tests/data/upstream_reference/e3dsnn_{t,s}_modelnet40.json (see the README there)."""
import json
import math
from pathlib import Path

import pytest
import torch
from mmengine.config import Config

from mmspike.models.layers.spconv_support import spconv_available

pytestmark = pytest.mark.skipif(not spconv_available(), reason='spconv is not installed')

ROOT = Path(__file__).resolve().parents[2]
REF = ROOT / 'tests/data/upstream_reference'


def build(variant):
    import mmspike.points  # noqa: F401
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS
    init_default_scope('mmpretrain')
    cfg = Config.fromfile(str(ROOT / f'configs/points/e3dsnn-{variant}_modelnet40.py'))
    return MODELS.build(cfg.model)


def formula_state_dict(ref):
    """The recorder's weights: float64 draws in upstream state-dict order (see the README)."""
    g = torch.Generator().manual_seed(0)
    out = {}
    for key, shape, role in ref['state_dict']:
        if key.endswith('num_batches_tracked'):
            out[key] = torch.tensor(0)
            continue
        r = torch.randn(shape, generator=g, dtype=torch.float64)
        if role == 'conv.weight':
            r = r * math.sqrt(2.0 / math.prod(shape[1:]))
        elif role == 'bn.weight':
            r = 1 + 0.2 * r
        elif role == 'bn.bias':
            r = 0.3 + 0.2 * r
        elif role == 'bn.running_mean':
            r = 0.1 * r
        elif role == 'bn.running_var':
            r = 1 + 0.25 * r.abs()
        elif role == 'conv.bias':
            r = 0.1 * r
        else:
            raise KeyError(role)
        out[key] = r.float()
    return out


@pytest.mark.parametrize('variant', ['t', 's'])
def test_parameters_and_layer_shapes_equal_upstream(variant):
    from mmspike.points.models import convert_upstream_e3dsnn
    ref = json.loads((REF / f'e3dsnn_{variant}_modelnet40.json').read_text())
    model = build(variant)
    ours = sum(p.numel() for p in model.parameters())
    assert ours == ref['num_parameters'], (ours, ref['num_parameters'])
    assert ours == {'t': 1_874_216, 's': 3_271_144}[variant]
    # every upstream tensor maps to exactly one of ours, with the same number of elements
    upstream = {k: torch.zeros(shape) for k, shape, _ in ref['state_dict']}
    mapped = convert_upstream_e3dsnn(upstream)
    sd = model.state_dict()
    assert set(mapped) == set(sd), (set(mapped) ^ set(sd))
    for k, v in mapped.items():
        assert tuple(v.shape) == tuple(sd[k].shape), (k, v.shape, sd[k].shape)


@pytest.mark.parametrize('variant', ['t', 's'])
def test_logits_equal_upstream_on_real_shapes(variant):
    """Same weights (formula) and the recorded voxels of two real ModelNet40 shapes: our
    classifier reproduces upstream's logits."""
    from mmspike.points.models import convert_upstream_e3dsnn, sparse_batch
    ref = json.loads((REF / f'e3dsnn_{variant}_modelnet40.json').read_text())
    model = build(variant)
    model.load_state_dict(convert_upstream_e3dsnn(formula_state_dict(ref)), strict=True)
    model.eval()
    coords = [torch.tensor(c, dtype=torch.int32) for c in ref['input']['grid_coord']]
    feats = [torch.tensor(f, dtype=torch.float32) for f in ref['input']['feat']]
    with torch.no_grad():
        logits = model(sparse_batch(coords, feats), mode='tensor')
    expected = torch.tensor(ref['logits'], dtype=torch.float32)
    assert logits.shape == expected.shape == (2, 40)
    torch.testing.assert_close(logits, expected, rtol=1e-4, atol=1e-4)
    # the neurons fire (the comparison is not between two silent networks)
    assert min(ref['spike_rates']) > 0.01


def test_unknown_upstream_key_is_an_error():
    from mmspike.points.models import convert_upstream_e3dsnn
    with pytest.raises(KeyError, match='enc.0.proj'):
        convert_upstream_e3dsnn({'enc.0.proj.weight': torch.zeros(1)})


def test_checkpoint_converter(tmp_path):
    """tools/model_converters/e3dsnn_to_mmspike.py on a checkpoint in Pointcept's layout
    (``module.backbone.*`` under ``state_dict``): the converted file reproduces upstream's logits;
    a checkpoint of the other size is refused by the strict load into the config."""
    import importlib.util

    from mmspike.points.models import sparse_batch
    spec = importlib.util.spec_from_file_location(
        '_e3dsnn_to_mmspike', ROOT / 'tools/model_converters/e3dsnn_to_mmspike.py')
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    ref = json.loads((REF / 'e3dsnn_t_modelnet40.json').read_text())
    src = tmp_path / 'model_best.pth'
    torch.save(dict(epoch=300, state_dict={f'module.backbone.{k}': v for k, v in
                                           formula_state_dict(ref).items()}), src)
    dst = tmp_path / 'converted.pth'
    config = str(ROOT / 'configs/points/e3dsnn-t_modelnet40.py')
    tool.main([str(src), str(dst), '--config', config])
    model = build('t')
    model.load_state_dict(torch.load(dst, weights_only=True)['state_dict'], strict=True)
    model.eval()
    coords = [torch.tensor(c, dtype=torch.int32) for c in ref['input']['grid_coord']]
    feats = [torch.tensor(f, dtype=torch.float32) for f in ref['input']['feat']]
    with torch.no_grad():
        logits = model(sparse_batch(coords, feats), mode='tensor')
    torch.testing.assert_close(logits, torch.tensor(ref['logits'], dtype=torch.float32),
                               rtol=1e-4, atol=1e-4)
    small = json.loads((REF / 'e3dsnn_s_modelnet40.json').read_text())
    torch.save(dict(state_dict=formula_state_dict(small)), src)
    with pytest.raises(ValueError, match='does not fit .*different shape'):
        tool.main([str(src), str(dst), '--config', config])
