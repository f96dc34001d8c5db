"""Convert an upstream E-3DSNN ModelNet40 checkpoint (Pointcept, ``SNN_3dv``) to mmspike.

    python tools/model_converters/e3dsnn_to_mmspike.py SRC.pth DST.pth \\
        [--config configs/points/e3dsnn-t_modelnet40.py]

The source is read as weights only (``torch.load(weights_only=True)``; Pointcept saves
``{'state_dict': ..., 'optimizer': ..., ...}``, keys ``[module.]backbone.stem.*``, ``.enc.*``,
``.final.*``). Every key is mapped by name with
:func:`mmspike.points.models.convert_upstream_e3dsnn` (an unknown key is an error); the 1x1
``final`` conv becomes the ``LinearClsHead``'s ``fc`` as spconv computes it. With ``--config`` the
result is loaded strictly into that config's model first, so a T checkpoint cannot end up in an S
config. The output is an MMEngine checkpoint for ``tools/test.py``.
"""
import argparse
import os.path as osp
import sys

import torch

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


def convert(src: str, config: str = None) -> dict:
    from mmspike.engine.checkpoint import load_state_dict_file, state_dict_mismatch
    from mmspike.points.models import convert_upstream_e3dsnn
    state = convert_upstream_e3dsnn(load_state_dict_file(src))
    if config is not None:
        from mmengine.config import Config
        from mmengine.registry import init_default_scope
        from mmpretrain.registry import MODELS
        cfg = Config.fromfile(config)
        init_default_scope(cfg.get('default_scope', 'mmpretrain'))
        model = MODELS.build(cfg.model)
        problem = state_dict_mismatch(model, state)
        if problem:
            raise ValueError(f'{src} does not fit {config}: {problem}')
        model.load_state_dict(state, strict=True)
    return state


def main(argv=None):
    parser = argparse.ArgumentParser(description='upstream E-3DSNN (Pointcept) -> mmspike')
    parser.add_argument('src', help='upstream checkpoint')
    parser.add_argument('dst', help='output MMEngine checkpoint')
    parser.add_argument('--config', default=None, help='check a strict load into this config')
    args = parser.parse_args(argv)
    state = convert(args.src, args.config)
    torch.save(dict(state_dict=state, meta=dict(converted_from=osp.basename(args.src))), args.dst)
    print(f'{len(state)} tensors -> {args.dst}')


if __name__ == '__main__':
    main()
