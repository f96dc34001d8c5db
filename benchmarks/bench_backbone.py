"""Training throughput (forward + backward) of a spiking classifier on the CPU or a GPU.

The model is the ImageNet classifier of the configs: backbone -> GAP -> MultiSpike(norm 1) ->
Linear(1000) (``SpikeGlobalAveragePooling`` + a linear head), trained with cross-entropy.

Example::

    python benchmarks/bench_backbone.py --arch 10m --batch-size 8 --size 224 --threads 2
"""
import argparse
import json
import time

import torch
import torch.nn.functional as F
from torch import nn

from mmspike.models.backbones import ESpikeFormer, MetaSpikeFormer, SpikformerV2
from mmspike.models.necks import SpikeGlobalAveragePooling

BACKBONES = {'e-spikeformer': ESpikeFormer, 'meta-spikeformer': MetaSpikeFormer,
             'spikformer-v2': SpikformerV2}


def build_classifier(family: str, arch: str, max_spikes: int, T: int) -> nn.Module:
    cls = BACKBONES[family]
    kwargs = dict(arch=arch, T=T)
    if family == 'e-spikeformer':
        kwargs['neuron'] = dict(type='MultiSpike', max_spikes=max_spikes)
    backbone = cls(**kwargs)
    neck = SpikeGlobalAveragePooling(
        neuron=dict(type='MultiSpike', max_spikes=max_spikes, norm=1)
        if family == 'e-spikeformer' else None)
    head = nn.Linear(backbone.out_channels[-1], 1000)

    class Classifier(nn.Module):

        def __init__(self) -> None:
            super().__init__()
            self.backbone, self.neck, self.head = backbone, neck, head

        def forward(self, x):
            return self.head(self.neck(self.backbone(x))[-1])

    return Classifier()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--family', default='e-spikeformer', choices=sorted(BACKBONES))
    parser.add_argument('--arch', default='10m')
    parser.add_argument('--batch-size', type=int, default=8)
    parser.add_argument('--size', type=int, default=224)
    parser.add_argument('--T', type=int, default=1)
    parser.add_argument('--max-spikes', type=int, default=4, help='D of "1xD"')
    parser.add_argument('--iters', type=int, default=5, help='timed iterations')
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--threads', type=int, default=None, help='torch CPU threads')
    parser.add_argument('--device', default='cpu')
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    model = build_classifier(args.family, args.arch, args.max_spikes, args.T).to(args.device)
    model.train()
    params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.randn(args.batch_size, 3, args.size, args.size, device=args.device)
    y = torch.randint(0, 1000, (args.batch_size, ), device=args.device)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()

    sync = torch.cuda.synchronize if args.device.startswith('cuda') else (lambda: None)
    for _ in range(args.warmup):
        step()
    sync()
    times = []
    for _ in range(args.iters):
        t0 = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - t0)
    times.sort()
    median = times[len(times) // 2]
    print(json.dumps(dict(
        family=args.family, arch=args.arch, params=params, batch_size=args.batch_size,
        size=args.size, T=args.T, D=args.max_spikes, device=args.device,
        threads=torch.get_num_threads(), iters=args.iters,
        median_s_per_iter=round(median, 4), best_s_per_iter=round(times[0], 4),
        img_per_s_median=round(args.batch_size / median, 2),
        img_per_s_best=round(args.batch_size / times[0], 2))))


if __name__ == '__main__':
    main()
