"""Converted SDT-V3 weights reproduce the upstream models' outputs (recorded references).

``tests/data/upstream_reference`` holds what upstream's own code
(BICLab/Spike-Driven-Transformer-V3, run outside this repository, see its README.md) wrote and
computed: the key/shape manifest of each model's state dict and its logits, in float64 and
float32, for weights given by a formula of the key (:func:`formula_state_dict`) on a fixed
2 x 3 x 32 x 32 input, plus the element count and integer spike total of every neuron call. Here the same weights, converted by the shipped converter, are
loaded strictly into the model of the shipped config and must give:

* float64: bit-identical logits and identical spikes (fast and plain execution paths);
* float32: identical spikes (so identical argmax) and logits equal up to float32 summation order.
"""
import importlib.util
import os.path as osp

import pytest
import torch

import mmspike.classification  # noqa: F401
from mmspike.models.execution import execution_mode
from mmspike.models.neurons import IntegerNeuron

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
REF_DIR = osp.join(ROOT, 'tests', 'data', 'upstream_reference')
CFG_DIR = osp.join(ROOT, 'configs', 'mmpretrain')


def _load(name):
    path = osp.join(ROOT, 'tools', 'model_converters', f'{name}.py')
    spec = importlib.util.spec_from_file_location(f'{name}_fidelity', path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


converter = _load('sdtv3_to_mmspike')
ref = _load('upstream_reference')

# recorded reference -> the config whose model the converted weights must load into
CASES = {
    'base_2m': 'e-spikeformer-2m_1x4_8xb128_in1k.py',
    'base_10m': 'e-spikeformer-10m_1x4_8xb128_in1k.py',
    'large_83m': 'e-spikeformer-83m_1x4_8xb128_in1k.py',
    'large_83m_released_1x8': 'e-spikeformer-83m-released_1x8_8xb128_in1k.py',
    'large_173m_1x8': 'e-spikeformer-173m_1x8_8xb128_in1k.py',
}


def _model(config):
    """The config's model, without its random initialisation (every weight is loaded after)."""
    from mmengine.registry import MODELS
    from mmspike.analysis.config_utils import load_config
    return MODELS.build(load_config(osp.join(CFG_DIR, config)).model).eval()


def _spike_calls(model):
    calls = []

    def hook(mod, inputs, out):
        s = out.detach().double() * mod.norm
        calls.append((out.numel(), int(torch.round(s).sum().item())))

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, IntegerNeuron)]
    return calls, handles


def _run(model, x, mode):
    with execution_mode(model, mode), torch.no_grad():
        calls, handles = _spike_calls(model)
        out = model(x, mode='tensor')
        for h in handles:
            h.remove()
    return out, sorted(calls)


@pytest.mark.parametrize('name', list(CASES))
def test_converted_weights_reproduce_upstream(name):
    meta, recorded = ref.load_reference(REF_DIR, name)
    model = _model(CASES[name])
    # the firing of upstream's family (each mode is checked against upstream's formula in
    # tests/test_models/test_neurons/test_round_modes.py; ties are too rare to show here)
    modes = {m.round_mode for m in model.modules() if isinstance(m, IntegerNeuron)}
    assert modes == {'half_even' if name.startswith('base') else 'floor_plus_half'}, modes
    x_shape = tuple(recorded['input_shape'].tolist())
    report = {}
    # the formula is drawn in float64; its float32 weights are those values cast
    state64, structure = converter.convert(ref.formula_state_dict(meta['manifest'],
                                                                  torch.float64))
    for dt_name, dt in (('float64', torch.float64), ('float32', torch.float32)):
        model.to(dt)
        model.load_state_dict(state64, strict=True)  # copied into dt, rounded there once
        x = ref.fixed_input(x_shape, dt)
        expected = recorded[f'logits_{dt_name}']
        up_calls = sorted(map(tuple, recorded[f'spikes_{dt_name}'].tolist()))
        fast, _ = _run(model, x, 'fast')
        plain, calls = _run(model, x, 'plain')
        assert calls == up_calls, f'{name} {dt_name}: spikes differ from upstream'
        diff = max((fast - expected).abs().max().item(), (plain - expected).abs().max().item())
        report[dt_name] = diff
        assert torch.equal(fast.argmax(1), expected.argmax(1))
        if dt == torch.float64 and ref.same_capability(meta):
            assert torch.equal(fast, expected) and torch.equal(plain, expected), \
                f'{name}: float64 logits differ from upstream by {diff:.3g}'
        elif dt == torch.float64:  # other kernels here than where it was recorded
            assert diff <= 1e-12 * max(1.0, expected.abs().max().item()), diff
        else:
            assert diff < 1e-3 * max(1.0, expected.abs().max().item()), diff
    print(f'{name}: max |logit - upstream| fp64 {report["float64"]:.3g}, '
          f'fp32 {report["float32"]:.3g}')


def test_mae_encoder_loads_into_c192_arch(tmp_path):
    """The released 173M MAE encoder (C0 = 192) converts and every encoder tensor loads into the
    '173m-c192' fine-tuning config; the 173M config (C0 = 196, as the fine-tuning code) refuses
    it by name and shape."""
    meta, _ = ref.load_reference(REF_DIR, 'mae_173m')
    from collections import OrderedDict  # names and shapes are what loading checks
    state, structure = converter.convert(OrderedDict(
        (k, torch.zeros(shape, dtype=ref.DTYPES[dt])) for k, shape, dt in meta['manifest']))
    assert structure['mae'] and len(structure['dropped']) > 0
    converter.check_against_config(
        state, osp.join(CFG_DIR, 'e-spikeformer-173m-c192_1x4_8xb128_in1k.py'), encoder_only=True)
    with pytest.raises(converter.ConversionError,
                       match=r'keys with a different shape: backbone\.stages'):
        converter.check_against_config(
            state, osp.join(CFG_DIR, 'e-spikeformer-173m_1x4_8xb128_in1k.py'), encoder_only=True)
