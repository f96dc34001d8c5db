"""Extract the encoder of a spike-MAE pre-training checkpoint as a backbone checkpoint.

    python tools/model_converters/spike_mae2backbone.py SRC.pth DST.pth [--config FINETUNE_CONFIG]

``SRC.pth`` is a checkpoint of ``mmspike.SpikeMAE`` or ``mmspike.SpikformerV2MIM`` (as saved by
``tools/train.py``); ``DST.pth`` gets ``{'state_dict': <the backbone.* tensors with the prefix
stripped>, 'meta': ...}``, the file ``mmspike.PretrainedBackboneHook`` loads into an
``ESpikeFormer`` (``SpikformerV2``) by exact key. SSC conversion keeps every parameter name, so the
keys are those of the plain backbone.

With ``--config`` (the fine-tune config) the backbone of that config is built and the converted
weights are loaded into it with every key checked; a missing or unexpected key is an error that
lists them all. The source is read with ``torch.load(weights_only=True)``; a checkpoint without the
keys of a SpikeMAE (``encoder_norm``, the decoder's ``mask_token``) is refused, and so is ``DST``
naming the source file.
"""
import argparse
import os
import os.path as osp
import sys

import torch

sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), '..', '..')))

import mmspike  # noqa: E402,F401
from mmspike.engine import load_state_dict_file  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='spike-MAE checkpoint -> backbone checkpoint')
    parser.add_argument('src', help='SpikeMAE checkpoint (tools/train.py output)')
    parser.add_argument('dst', help='output backbone checkpoint')
    parser.add_argument('--config', help='fine-tune config whose model.backbone must load the '
                        'result by exact key')
    return parser.parse_args(argv)


def check_against_config(state_dict, config: str) -> int:
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    import mmspike.models  # noqa: F401
    from mmspike.engine.hooks import load_state_dict_exact
    from mmspike.registry import MODELS
    cfg = Config.fromfile(config)
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    backbone_cfg = cfg.model.backbone.copy()
    backbone_cfg.pop('init_cfg', None)
    backbone = MODELS.build(backbone_cfg)
    load_state_dict_exact(backbone, state_dict, f'the backbone of {config}')
    return len(state_dict)


#: keys only a SpikeMAE has (the encoder norm before the decoder, the decoder's mask token)
MAE_MARKERS = ('encoder_norm.weight', 'neck.mask_token')


def check_is_spike_mae(state_dict, src: str) -> None:
    """Refuse a checkpoint that is not a SpikeMAE's (e.g. a fine-tuned classifier, whose
    ``backbone.*`` keys would otherwise be converted without a word)."""
    missing = [k for k in MAE_MARKERS if k not in state_dict]
    if missing:
        raise SystemExit(f'{src} is not a spike-MAE checkpoint: it lacks {missing}, which every '
                         f'mmspike.SpikeMAE has (first keys: {sorted(state_dict)[:5]})')


def main(argv=None) -> None:
    args = parse_args(argv)
    if osp.realpath(args.src) == osp.realpath(args.dst):
        raise SystemExit(f'refusing to overwrite the source checkpoint {args.src}: give another '
                         f'output path')
    from mmspike.classification.selfsup import mae_to_backbone_state_dict
    src_state_dict = load_state_dict_file(args.src)
    check_is_spike_mae(src_state_dict, args.src)
    state_dict = mae_to_backbone_state_dict(src_state_dict)
    if args.config:
        n = check_against_config(state_dict, args.config)
        print(f'all {n} tensors load into the backbone of {args.config}')
    os.makedirs(osp.dirname(osp.abspath(args.dst)), exist_ok=True)
    torch.save({'state_dict': state_dict,
                'meta': {'source': osp.basename(args.src), 'converter': 'spike_mae2backbone'}},
               args.dst)
    print(f'saved {len(state_dict)} backbone tensors to {args.dst}')


if __name__ == '__main__':
    main()
