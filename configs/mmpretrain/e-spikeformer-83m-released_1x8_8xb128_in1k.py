# E-SpikeFormer-83M as released (84.0% at 1x8): the released weights' pre-mixer is C -> 1.5C -> C,
# not the C -> C -> C of upstream's code (V3 issue #9), so they load into arch '83m-released'.
# Evaluate converted weights with `tools/test.py` on this config (no teacher is built); the
# training settings are those of the 83M 1x8 fine-tuning config.
_base_ = ['./e-spikeformer-83m_1x8_8xb128_in1k.py']

model = dict(backbone=dict(arch='83m-released'))
