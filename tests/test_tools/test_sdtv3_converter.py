"""The SDT-V3 -> mmspike converter on synthetic checkpoints in the upstream layout.

The upstream layout is written here from the upstream module naming and registration order
(``Model_Base/models.py``, ``Model_Large/spikformer.py``), independently of the converter's key
map. The reference model takes the same tensors *by position* (both models register their layers
in the same order), so a wrong name mapping and a wrong positional match cannot agree by accident.
"""
import argparse
import importlib.util
import os.path as osp
from collections import OrderedDict

import pytest
import torch
from mmengine.registry import MODELS, init_default_scope

import mmspike.classification  # noqa: F401
from mmspike.engine.checkpoint import load_state_dict_file
from mmspike.models.backbones.e_spikeformer import ESpikeFormer

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _load_tool():
    path = osp.join(ROOT, 'tools', 'model_converters', 'sdtv3_to_mmspike.py')
    spec = importlib.util.spec_from_file_location('sdtv3_to_mmspike', path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


tool = _load_tool()


# ----------------------------------------------------------------------------- upstream layout
def _bn(spec, name, n):
    for k in ('weight', 'bias', 'running_mean', 'running_var'):
        spec[f'{name}.{k}'] = (n, )
    spec[f'{name}.num_batches_tracked'] = ()


def _ds(spec, name, cin, cout, k):
    spec[f'{name}.encode_conv.weight'] = (cout, cin, k, k)
    spec[f'{name}.encode_conv.bias'] = (cout, )
    _bn(spec, f'{name}.encode_bn', cout)


def _sepconv(spec, name, d, k):
    spec[f'{name}.pwconv1.0.weight'] = (2 * d, d, 1, 1)
    _bn(spec, f'{name}.pwconv1.1', 2 * d)
    spec[f'{name}.dwconv.0.weight'] = (2 * d, 1, k, k)
    _bn(spec, f'{name}.dwconv.1', 2 * d)
    spec[f'{name}.pwconv2.0.weight'] = (d, 2 * d, 1, 1)
    _bn(spec, f'{name}.pwconv2.1', d)


def _mlp(spec, name, d):
    spec[f'{name}.fc1_conv.weight'] = (4 * d, d, 1)
    spec[f'{name}.fc1_conv.bias'] = (4 * d, )
    _bn(spec, f'{name}.fc1_bn', 4 * d)
    spec[f'{name}.fc2_conv.weight'] = (d, 4 * d, 1)
    spec[f'{name}.fc2_conv.bias'] = (d, )
    _bn(spec, f'{name}.fc2_bn', d)


def base_spec(c, n3, n4, num_classes):
    """``Spiking_vit_MetaFormer_Spike_SepConv`` keys and shapes, in registration order."""
    spec = OrderedDict()

    def conv_block(name, d):  # MS_ConvBlock_spike_SepConv
        _sepconv(spec, f'{name}.Conv', d, 7)
        spec[f'{name}.conv1.weight'] = (4 * d, d, 3, 3)
        _bn(spec, f'{name}.bn1', 4 * d)
        spec[f'{name}.conv2.weight'] = (d, 4 * d, 3, 3)
        _bn(spec, f'{name}.bn2', d)

    def block(name, d):  # MS_Block_Spike_SepConv with MS_Attention_linear (lamda_ratio 4)
        _sepconv(spec, f'{name}.conv', d, 3)
        for p, cin, cout in (('q_conv', d, d), ('k_conv', d, d), ('v_conv', d, 4 * d),
                             ('proj_conv', 4 * d, d)):
            spec[f'{name}.attn.{p}.0.weight'] = (cout, cin, 1, 1)
            _bn(spec, f'{name}.attn.{p}.1', cout)
        _mlp(spec, f'{name}.mlp', d)

    _ds(spec, 'downsample1_1', 3, c[0] // 2, 7)
    conv_block('ConvBlock1_1.0', c[0] // 2)
    _ds(spec, 'downsample1_2', c[0] // 2, c[0], 3)
    conv_block('ConvBlock1_2.0', c[0])
    _ds(spec, 'downsample2', c[0], c[1], 3)
    conv_block('ConvBlock2_1.0', c[1])
    conv_block('ConvBlock2_2.0', c[1])
    _ds(spec, 'downsample3', c[1], c[2], 3)
    for j in range(n3):
        block(f'block3.{j}', c[2])
    _ds(spec, 'downsample4', c[2], c[3], 3)
    for j in range(n4):
        block(f'block4.{j}', c[3])
    spec['head.weight'] = (num_classes, c[3])
    spec['head.bias'] = (num_classes, )
    return spec


def large_spec(c, n3, num_classes, rep_conv):
    """``Spikformer`` (large family, finetune mode with layer scale, KD head) keys and shapes."""
    spec = OrderedDict()

    def conv_block(name, d):  # MS_ConvBlock with MS_conv_unit = Seq(SeqToANNContainer(conv, bn))
        # SeqToANNContainer is a plain nn.Sequential in the spikingjelly versions upstream pins
        # (0.0.0.0.12 / 0.0.0.0.14): no 'module' level (checked against the recorded manifests
        # of upstream's own state dicts in test_recorded_upstream_layouts).
        for i, (cin, cout) in enumerate(((d, 4 * d), (4 * d, d)), 1):
            spec[f'{name}.conv{i}.0.0.weight'] = (cout, cin, 3, 3)
            spec[f'{name}.conv{i}.0.0.bias'] = (cout, )
            _bn(spec, f'{name}.conv{i}.0.1', cout)

    def pair(name, cin, hidden, cout):  # RepConv / RepConv2: two Seq(Conv1d, BN1d)
        spec[f'{name}.conv1.0.weight'] = (hidden, cin, 1)
        _bn(spec, f'{name}.conv1.1', hidden)
        spec[f'{name}.conv2.0.weight'] = (cout, hidden, 1)
        _bn(spec, f'{name}.conv2.1', cout)

    def block(name, d):  # MS_Block: own parameters (layer scales) come first in a state dict
        spec[f'{name}.layer_scale1'] = (d, )
        spec[f'{name}.layer_scale2'] = (d, )
        if rep_conv:
            pair(f'{name}.rep_conv', d, d, d)
        for p in ('q_conv', 'k_conv', 'v_conv', 'proj_conv'):
            pair(f'{name}.attn.{p}.0', d, int(d * 1.5), d)
            _bn(spec, f'{name}.attn.{p}.1', d)
        _mlp(spec, f'{name}.mlp', d)

    _ds(spec, 'downsample1_1', 3, c[0] // 2, 7)
    conv_block('ConvBlock1_1.0', c[0] // 2)
    _ds(spec, 'downsample1_2', c[0] // 2, c[0], 3)
    conv_block('ConvBlock1_2.0', c[0])
    _ds(spec, 'downsample2', c[0], c[1], 3)
    conv_block('ConvBlock2_1.0', c[1])
    conv_block('ConvBlock2_2.0', c[1])
    _ds(spec, 'downsample3', c[1], c[2], 3)
    for j in range(n3):
        block(f'block3.{j}', c[2])
    for h in ('head', 'head_kd'):
        spec[f'{h}.weight'] = (num_classes, c[2])
        spec[f'{h}.bias'] = (num_classes, )
    return spec


def random_state(spec, seed=0):
    g = torch.Generator().manual_seed(seed)
    state = OrderedDict()
    for k, shape in spec.items():
        if k.endswith('num_batches_tracked'):
            state[k] = torch.tensor(123)
        elif k.endswith('running_var'):
            state[k] = torch.rand(shape, generator=g) + 0.5
        elif k.endswith('running_mean') or k.endswith('.bias'):
            state[k] = torch.randn(shape, generator=g) * 0.3
        elif 'layer_scale' in k:
            state[k] = torch.rand(shape, generator=g) + 0.5
        else:  # weights: large enough that neurons fire
            fan_in = max(1, int(torch.tensor(shape[1:]).prod())) if len(shape) > 1 else 1
            state[k] = torch.randn(shape, generator=g) * (3.0 / fan_in**0.5)
    return state


# ----------------------------------------------------------------------------- mmspike models
BASE_C, LARGE_C = (16, 32, 64, 80), (16, 32, 64)


def model_cfg(family, num_classes=7):
    if family == 'base':
        arch = dict(channels=BASE_C, depths=(1, 2, 2, 1), strides=(4, 2, 2, 1))
        head = dict(type='LinearClsHead', num_classes=num_classes, in_channels=BASE_C[-1])
    else:
        arch = dict(ESpikeFormer.arch_settings['83m'], channels=LARGE_C, depths=(1, 2, 2),
                    strides=(4, 2, 2))
        head = dict(type='mmspike.SpikeDistillClsHead', num_classes=num_classes,
                    in_channels=LARGE_C[-1])
    return dict(
        type='ImageClassifier',
        backbone=dict(type='mmspike.ESpikeFormer', arch=arch),
        neck=dict(type='mmspike.SpikeGlobalAveragePooling',
                  neuron=dict(type='MultiSpike', max_spikes=4, norm=1)),
        head=head)


def build(family):
    init_default_scope('mmpretrain')
    return MODELS.build(model_cfg(family)).eval()


def save_upstream(path, state):
    """As the upstream training scripts save: model, optimizer, epoch, scaler and args."""
    torch.save(dict(model=state, optimizer=dict(state={}, param_groups=[]), epoch=199,
                    scaler=dict(scale=65536.0),
                    args=argparse.Namespace(model='Efficient_Spiking_Transformer_m', lr=6e-4)),
               path)


@pytest.mark.parametrize('family', ['base', 'large'])
def test_round_trip(tmp_path, family):
    if family == 'base':
        spec = base_spec(BASE_C, n3=2, n4=1, num_classes=7)
    else:
        spec = large_spec(LARGE_C, n3=2, num_classes=7, rep_conv=True)
    upstream = random_state(spec)
    src, dst = str(tmp_path / 'up.pth'), str(tmp_path / 'mm.pth')
    save_upstream(src, upstream)

    result = tool.main([src, dst])
    assert result['structure']['family'] == family
    converted = load_state_dict_file(dst)  # mmspike's weights-only loader reads the result
    model = build(family)
    model.load_state_dict(converted, strict=True)

    # Reference: the same tensors taken by position, without any name mapping.
    reference = build(family)
    target = reference.state_dict()
    assert len(target) == len(upstream)
    positional = OrderedDict()
    for (up_key, t), (mm_key, ref) in zip(upstream.items(), target.items()):
        t = t.unsqueeze(-1) if t.dim() == 3 else t  # Conv1d [O, I, 1] -> 1x1 Conv2d
        assert t.shape == ref.shape, f'{up_key} vs {mm_key}'
        positional[mm_key] = t
    reference.load_state_dict(positional, strict=True)
    for k, v in converted.items():
        assert torch.equal(v, positional[k]), k

    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        out = model(x, mode='tensor')
        ref = reference(x, mode='tensor')
        feats = model.extract_feat(x)[0]
    assert torch.equal(out, ref)
    assert feats.abs().sum() > 0 and out.std() > 0  # the synthetic weights make neurons fire


def test_config_check_and_errors(tmp_path):
    spec = base_spec(BASE_C, n3=2, n4=1, num_classes=7)
    upstream = random_state(spec)
    cfg_file = tmp_path / 'cfg.py'
    cfg_file.write_text(f'model = {model_cfg("base")!r}\n')
    src, dst = str(tmp_path / 'up.pth'), str(tmp_path / 'mm.pth')
    save_upstream(src, upstream)
    tool.main([src, dst, '--config', str(cfg_file)])  # strict load into the config's model

    # a model with another number of classes: shape mismatch reported by name
    cfg_file.write_text(f'model = {model_cfg("base", num_classes=5)!r}\n')
    with pytest.raises(SystemExit,
                       match=r'head\.fc\.weight: checkpoint \(7, 80\) vs model \(5, 80\)'):
        tool.main([src, dst, '--config', str(cfg_file)])

    extra = OrderedDict(upstream, **{'block3.0.attn.extra_conv.weight': torch.zeros(1)})
    with pytest.raises(tool.ConversionError, match=r"no mapping: \['block3.0.attn.extra_conv"):
        tool.convert(extra)
    missing = OrderedDict((k, v) for k, v in upstream.items() if k != 'block4.0.mlp.fc2_bn.bias')
    with pytest.raises(tool.ConversionError, match=r"missing: \['block4.0.mlp.fc2_bn.bias'\]"):
        tool.convert(missing)
    bad = OrderedDict(upstream)
    bad['block3.1.mlp.fc1_conv.weight'] = torch.zeros(256, 64, 3)
    with pytest.raises(tool.ConversionError, match='expected a .O, I, 1. Conv1d weight'):
        tool.convert(bad)
    with pytest.raises(tool.ConversionError, match='not a Spike-Driven-Transformer-V3'):
        tool.convert({'conv.weight': torch.zeros(1)})
    # DDP-saved checkpoints: a common 'module.' prefix is dropped
    prefixed = OrderedDict((f'module.{k}', v) for k, v in upstream.items())
    assert list(tool.convert(prefixed)[0]) == list(tool.convert(upstream)[0])


def test_refuses_pickled_code(tmp_path):
    src = str(tmp_path / 'evil.pth')
    torch.save(dict(model={'a': torch.zeros(1)}, extra=tmp_path), src)  # a Path object
    with pytest.raises(SystemExit, match='global pathlib.PosixPath .*loaded as weights only'):
        tool.main([src, str(tmp_path / 'out.pth')])


@pytest.mark.parametrize('content,reason', [(b'', 'is empty'),
                                            (b'not a checkpoint at all', 'not a PyTorch checkpoint')])
def test_unreadable_file_is_named_without_unsafe_advice(tmp_path, content, reason):
    src = tmp_path / 'bad.pth'
    src.write_bytes(content)
    with pytest.raises(SystemExit) as err:
        tool.main([str(src), str(tmp_path / 'out.pth')])
    assert str(src) in str(err.value) and reason in str(err.value)
    assert 'weights_only=False' not in str(err.value)


def test_released_sizes_key_counts():
    """Key maps of the released base sizes cover exactly the upstream layout."""
    for channels in ((32, 64, 128, 192), (48, 96, 192, 240), (64, 128, 256, 360)):
        spec = base_spec(channels, n3=6, n4=2, num_classes=1000)
        structure = tool.detect_structure(dict.fromkeys(spec, torch.zeros(1)))
        assert set(tool.build_key_map(structure)) == set(spec)
    spec = large_spec((196, 384, 768), n3=12, num_classes=1000, rep_conv=False)
    structure = tool.detect_structure(dict.fromkeys(spec, torch.zeros(1)))
    assert structure == dict(family='large', blocks3=12, blocks4=0, rep_conv=False,
                             rep_conv_ratio=None, layer_scale=True, head=True, head_kd=True,
                             mae=False)
    assert set(tool.build_key_map(structure)) == set(spec)


REF_DIR = osp.join(ROOT, 'tests', 'data', 'upstream_reference')


@pytest.mark.parametrize('name', ['base_2m', 'base_10m', 'large_83m', 'large_83m_released_1x8',
                                  'large_173m_1x8', 'mae_173m'])
def test_recorded_upstream_layouts(name):
    """The key maps cover exactly the state dicts upstream's own code writes (manifests
    recorded by running it, see tests/data/upstream_reference/README.md), and this file's
    hand-written layouts agree with them."""
    import json
    with open(osp.join(REF_DIR, f'{name}.json')) as f:
        manifest = json.load(f)['manifest']
    state = OrderedDict((k, torch.zeros(shape)) for k, shape, _ in manifest)
    structure = tool.detect_structure(state)
    converted, structure = tool.convert(state)
    assert len(converted) == len(state) - len(structure.get('dropped', ()))
    if name.startswith('base'):
        c = {'base_2m': (24, 48, 96, 128), 'base_10m': (48, 96, 192, 240)}[name]
        spec = base_spec(c, n3=6, n4=2, num_classes=1000)
        assert {k: tuple(v.shape) for k, v in state.items()} == spec
    elif name.startswith('large'):
        c = (196, 384, 768) if '173m' in name else (128, 256, 512)
        spec = large_spec(c, n3=12, num_classes=1000, rep_conv='83m' in name)
        shapes = {k: tuple(v.shape) for k, v in state.items()}
        if 'released' in name:  # the released 83M pre-mixer is C -> 1.5C -> C
            assert structure['rep_conv_ratio'] == 1.5
            shapes = {k: (s[0] // 3 * 2, ) + s[1:] if '.rep_conv.conv1' in k and s else
                      (s[0], s[1] // 3 * 2, 1) if '.rep_conv.conv2.0' in k else s
                      for k, s in shapes.items()}
        assert shapes == spec
    else:  # MAE encoder: pre-training tensors dropped, every encoder tensor mapped
        assert structure['mae'] and not structure['layer_scale'] and not structure['head']
        assert structure['dropped'] and all(not k.startswith(('block3', 'ConvBlock', 'down'))
                                            for k in structure['dropped'])
    if not name.startswith('base'):  # the 'module'-level layout upstream never wrote
        with pytest.raises(tool.ConversionError, match='not what upstream'):
            tool.convert({k.replace('.conv1.0.0.', '.conv1.0.module.0.'): v
                          for k, v in state.items()})
