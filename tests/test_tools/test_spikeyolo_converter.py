"""SpikeYOLO checkpoints (BICLab/SpikeYOLO) convert, load strictly and reproduce upstream.

References in ``tests/data/upstream_reference`` (see its README.md) were recorded by running
upstream's own ultralytics fork outside this repository: the state-dict manifests of SpikeYOLO-n
and -s (``snn_yolov8.yaml``) with their raw head outputs for formula weights on a fixed
2 x 3 x 64 x 64 input, and a small (1/6-width) SpikeYOLO-n saved as upstream saves checkpoints: the
pickled ``DetectionModel`` object in float16.
"""
import importlib.util
import os.path as osp

import pytest
import torch

import mmspike.detection  # noqa: F401
from mmspike.models.execution import execution_mode
from mmspike.models.neurons import IntegerNeuron

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
REF_DIR = osp.join(ROOT, 'tests', 'data', 'upstream_reference')
CFG_DIR = osp.join(ROOT, 'configs', 'mmdet')
TINY_PICKLE = osp.join(REF_DIR, 'spikeyolo_tiny_ultralytics_fp16.pt')


def _load(name):
    path = osp.join(ROOT, 'tools', 'model_converters', f'{name}.py')
    spec = importlib.util.spec_from_file_location(f'{name}_yolo_test', path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


converter = _load('spikeyolo_to_mmspike')
ref = _load('upstream_reference')


def _model(name):
    from mmspike.analysis.config_utils import build_model, load_config
    cfg = load_config(osp.join(CFG_DIR, 'spikeyolo_n_coco.py' if name != 'spikeyolo_s' else
                               'spikeyolo_s_coco.py'))
    if name == 'spikeyolo_tiny':  # SpikeYOLO-n at 1/6 width: channels 8/16/32/64
        cfg.model.backbone.arch = dict(deepen_factor=0.33, widen_factor=0.0625)
        cfg.model.neck.in_channels = [16, 32, 64]
        cfg.model.bbox_head.in_channels = [16, 32, 64]
    return build_model(cfg).eval()


def _forward(model, x, mode):
    calls = []

    def hook(mod, inputs, out):
        calls.append((out.numel(), int(torch.round(out.detach().double() * mod.norm).sum())))

    with execution_mode(model, mode), torch.no_grad():
        handles = [m.register_forward_hook(hook) for m in model.modules()
                   if isinstance(m, IntegerNeuron)]
        cls_scores, bbox_preds = model.bbox_head(model.extract_feat(x))
        for h in handles:
            h.remove()
    # upstream's per-level map is cat(box 4 * reg_max, cls), flattened and joined over levels
    out = torch.cat([torch.cat([b, c], 1).flatten(2) for b, c in zip(bbox_preds, cls_scores)], 2)
    return out, sorted(calls)


def _compare(name, model, state, recorded, meta):
    report = {}
    x_shape = tuple(recorded['input_shape'].tolist())
    for dt_name, dt in (('float64', torch.float64), ('float32', torch.float32)):
        model.to(dt)
        model.load_state_dict(state, strict=True)  # float64 weights stay unrounded in float64
        x = ref.fixed_input(x_shape, dt)
        expected = recorded[f'logits_{dt_name}']
        up_calls = sorted(map(tuple, recorded[f'spikes_{dt_name}'].tolist()))
        fast, _ = _forward(model, x, 'fast')
        plain, calls = _forward(model, x, 'plain')
        if dt == torch.float32 and not ref.same_capability(meta):
            # other float32 kernels than where it was recorded: the first (real-valued) conv
            # rounds differently and flips spikes (seen on an AVX-512 Xeon); float64 above
            # checked the spikes, here the two paths must still agree bit for bit
            assert torch.equal(fast, plain)
            report[dt_name] = float('nan')
            continue
        assert calls == up_calls, f'{name} {dt_name}: spikes differ from upstream'
        report[dt_name] = max((fast - expected).abs().max().item(),
                              (plain - expected).abs().max().item())
        if dt == torch.float64 and ref.same_capability(meta):
            assert torch.equal(fast, expected) and torch.equal(plain, expected), report
        elif dt == torch.float64:  # other kernels here than where it was recorded
            assert report[dt_name] <= 1e-12 * max(1.0, expected.abs().max().item()), report
        else:
            assert report[dt_name] < 1e-3 * max(1.0, expected.abs().max().item()), report
    print(f'{name}: max |output - upstream| fp64 {report["float64"]:.3g}, '
          f'fp32 {report["float32"]:.3g}')
    return report


@pytest.mark.parametrize('name', ['spikeyolo_n', 'spikeyolo_s'])
def test_state_dict_converts_and_reproduces_upstream(name):
    meta, recorded = ref.load_reference(REF_DIR, name)
    upstream = ref.formula_state_dict(meta['manifest'], torch.float64)
    state, structure = converter.convert(upstream, meta['blocks'])
    assert structure['stage_blocks'] == [1, 2, 3, 1] and structure['levels'] == 3
    assert len(state) == len(upstream) - 1  # everything but the fixed DFL weights
    model = _model(name)
    # upstream fires torch.round: half to even (checked against it in test_round_modes.py)
    assert {m.round_mode for m in model.modules() if isinstance(m, IntegerNeuron)} == \
        {'half_even'}
    # the two sides list the same tensors in different orders: a positional match would be wrong
    shapes_up = [tuple(v.shape) for k, v in upstream.items() if 'dfl' not in k]
    shapes_mm = [tuple(v.shape) for v in model.state_dict().values()]
    assert sorted(shapes_up) == sorted(shapes_mm) and shapes_up != shapes_mm
    _compare(name, model, state, recorded, meta)
    # what --config does: strict load into the shipped config's model, errors by name
    converter.check_against_config(state, osp.join(CFG_DIR, f'{name}_coco.py'))
    other = 'spikeyolo_s' if name == 'spikeyolo_n' else 'spikeyolo_n'
    with pytest.raises(converter.ConversionError, match=r'keys with a different shape: backbone'):
        converter.check_against_config(state, osp.join(CFG_DIR, f'{other}_coco.py'))


def test_pickled_fp16_checkpoint_read_without_running_it(tmp_path):
    """The ultralytics-format float16 checkpoint is read by the restricted unpickler (no
    ultralytics installed here), converted by the CLI, loaded strictly by the config check and
    reproduces what upstream computes with those float16 weights."""
    meta, _ = ref.load_reference(REF_DIR, 'spikeyolo_tiny')
    upstream, blocks = converter.load_upstream(TINY_PICKLE)
    assert [k for k, _, _ in meta['manifest']] == list(upstream)
    assert all(v.dtype == torch.float16 for v in upstream.values() if v.is_floating_point())
    assert blocks == meta['blocks']
    dst = str(tmp_path / 'tiny.pth')
    structure = converter.main([TINY_PICKLE, dst])
    assert structure['blocks_mapped'] == 23
    from mmspike.engine.checkpoint import load_state_dict_file
    state = load_state_dict_file(dst)
    recorded = torch.load(osp.join(REF_DIR, 'spikeyolo_tiny_ultralytics_fp16_outputs.pt'),
                          weights_only=True)
    _compare('spikeyolo_tiny (fp16 pickle)', _model('spikeyolo_tiny'), state, recorded, meta)


class _Evil:

    def __reduce__(self):
        return (print, ('this must never run', ))


def test_refuses_foreign_globals_and_layouts(tmp_path):
    src = str(tmp_path / 'evil.pt')
    torch.save(dict(model=_Evil()), src)
    with pytest.raises(SystemExit, match=r'refusing to load global (__builtin__|builtins)\.print'):
        converter.main([src, str(tmp_path / 'out.pth')])
    meta, _ = ref.load_reference(REF_DIR, 'spikeyolo_n')
    upstream = ref.formula_state_dict(meta['manifest'])
    bad = dict(upstream)
    bad['model.26.dfl.conv.weight'] = torch.zeros(1, 16, 1, 1)
    with pytest.raises(converter.ConversionError, match='not the fixed DFL integral'):
        converter.convert(bad)
    missing = {k: v for k, v in upstream.items() if k != 'model.22.conv1.body.2.1.weight'}
    with pytest.raises(converter.ConversionError, match=r"missing: \['model.22.conv1.body.2.1"):
        converter.convert(missing)
    with pytest.raises(converter.ConversionError, match='not the SpikeYOLO snn_yolov8 layout'):
        converter.convert(upstream, meta['blocks'][:-1])
