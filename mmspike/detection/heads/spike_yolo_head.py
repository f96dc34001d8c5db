"""SpikeYOLO's anchor-free decoupled detection head as an mmdet dense head."""
import math
from typing import List, Optional, Sequence, Tuple

import torch
from mmdet.models.dense_heads.base_dense_head import BaseDenseHead
from mmdet.models.utils import filter_scores_and_topk
from mmdet.registry import MODELS as MMDET_MODELS
from mmdet.registry import TASK_UTILS
from mmdet.structures.bbox import distance2bbox, get_box_tensor
from mmdet.utils import reduce_mean
from mmengine.config import ConfigDict
from mmengine.structures import InstanceData
from torch import Tensor, nn

from mmspike.registry import MODELS
from mmspike.models.layers import SpikeConvBN, as_time_major, reduce_time
from mmspike.models.layers.yolo_blocks import set_yolo_norms


def _build_mmdet(cfg: dict, registry):
    """Build an mmdet component (loss, assigner, prior generator) whatever the default scope is."""
    cfg = dict(cfg)
    cfg.setdefault('_scope_', 'mmdet')
    return registry.build(cfg)


@MODELS.register_module()
class SpikeYOLOHead(BaseDenseHead):
    """YOLOv8-style anchor-free decoupled head of SpikeYOLO, trained with mmdet's components.

    Per level, a box branch (two spiking 3x3 conv + BN, a spiking 1x1 conv to ``4 * reg_max``) and a
    class branch (the same, ending at ``num_classes``) run on ``[T, B, C, H, W]`` features; their
    outputs are averaged over T, so everything after (Distribution Focal Loss integral, assigner,
    losses, NMS) is non-spiking and sees ordinary ``[B, C, H, W]`` maps. A ``[B, C, H, W]`` input is
    taken as T = 1, so the head also follows a non-spiking neck.

    Boxes are ``(l, t, r, b)`` distances from the cell centres (offset 0.5) in stride units, each
    the expectation of a softmax over ``reg_max`` bins (0 .. reg_max - 1). Training assigns targets
    with ``train_cfg.assigner`` (mmdet's ``TaskAlignedAssigner`` with YOLOv8's ``topk=10``,
    ``alpha=0.5``, ``beta=6``); a positive's class target is its alignment metric normalised per
    object to the object's best IoU, which also weights the box and DFL losses. All losses are
    averaged over the sum of those targets.

    Args:
        num_classes (int): Object classes (80 for COCO).
        in_channels (Sequence[int]): Channels of each input level.
        strides (Sequence[int]): Stride of each input level. Must be what the neck really outputs;
            :meth:`loss_by_feat` and :meth:`predict_by_feat` check it against the input size.
            Defaults to ``(8, 16, 32)``.
        reg_max (int): Bins of the box distance distribution. Defaults to 16.
        neuron (dict): Neuron config. Defaults to ``dict(type='ILIF', max_spikes=4)``.
        loss_cls (dict): Classification loss on sigmoid logits with dense soft targets (mmdet's
            ``CrossEntropyLoss(use_sigmoid=True)`` as in YOLOv8, or ``QualityFocalLoss``).
        loss_bbox (dict): IoU-type box loss. Defaults to ``CIoULoss`` (weight 7.5).
        loss_dfl (dict): Defaults to ``DistributionFocalLoss`` (weight 1.5).
        train_cfg (dict, optional): ``assigner`` plus its ``alpha`` and ``beta``.
        test_cfg (dict, optional): ``nms_pre``, ``score_thr``, ``nms``, ``max_per_img``.
        norm_eps (float): eps of every BatchNorm (ultralytics' 1e-3, which upstream weights
            need). Defaults to 1e-3.
        norm_momentum (float): BatchNorm momentum. Defaults to 0.03.
        init_cfg (dict, optional): Defaults to None.
    """

    def __init__(self,
                 num_classes: int,
                 in_channels: Sequence[int],
                 strides: Sequence[int] = (8, 16, 32),
                 reg_max: int = 16,
                 neuron: dict = dict(type='ILIF', max_spikes=4),
                 loss_cls: dict = dict(type='CrossEntropyLoss', use_sigmoid=True,
                                       reduction='mean', loss_weight=0.5),
                 loss_bbox: dict = dict(type='CIoULoss', loss_weight=7.5),
                 loss_dfl: dict = dict(type='DistributionFocalLoss', loss_weight=1.5),
                 train_cfg: Optional[dict] = dict(
                     assigner=dict(type='TaskAlignedAssigner', topk=10), alpha=0.5, beta=6.0),
                 test_cfg: Optional[dict] = dict(
                     nms_pre=30000, score_thr=0.001, nms=dict(type='nms', iou_threshold=0.7),
                     max_per_img=300),
                 norm_eps: float = 1e-3,
                 norm_momentum: float = 0.03,
                 init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        if len(in_channels) != len(strides):
            raise ValueError(f'in_channels {tuple(in_channels)} and strides {tuple(strides)} '
                             'must have one entry per level')
        if num_classes < 1 or reg_max < 2:
            raise ValueError(f'need num_classes >= 1 and reg_max >= 2, got {num_classes}, '
                             f'{reg_max}')
        self.num_classes = num_classes
        self.cls_out_channels = num_classes
        self.in_channels = tuple(in_channels)
        self.strides = tuple(strides)
        self.reg_max = reg_max
        self.train_cfg = ConfigDict(train_cfg) if train_cfg is not None else None
        self.test_cfg = ConfigDict(test_cfg) if test_cfg is not None else None

        # YOLOv8's branch widths, set by the finest level
        reg_c = max(16, in_channels[0] // 4, 4 * reg_max)
        cls_c = max(in_channels[0], min(num_classes, 100))
        self.reg_branches = nn.ModuleList(
            self._branch(c, reg_c, 4 * reg_max, neuron) for c in in_channels)
        self.cls_branches = nn.ModuleList(
            self._branch(c, cls_c, num_classes, neuron) for c in in_channels)
        # DFL integral weights 0..reg_max-1 (fixed, so a buffer, not a parameter)
        self.register_buffer('proj', torch.arange(reg_max, dtype=torch.float), persistent=False)
        set_yolo_norms(self, norm_eps, norm_momentum)

        self.prior_generator = _build_mmdet(
            dict(type='MlvlPointGenerator', strides=self.strides, offset=0.5), TASK_UTILS)
        self.loss_cls = _build_mmdet(loss_cls, MMDET_MODELS)
        self.loss_bbox = _build_mmdet(loss_bbox, MMDET_MODELS)
        self.loss_dfl = _build_mmdet(loss_dfl, MMDET_MODELS)
        if self.train_cfg is not None:
            self.assigner = _build_mmdet(self.train_cfg['assigner'], TASK_UTILS)
        self._init_biases()

    @staticmethod
    def _branch(in_c: int, mid_c: int, out_c: int, neuron: dict) -> nn.Sequential:
        return nn.Sequential(
            SpikeConvBN(in_c, mid_c, 3, neuron=neuron),
            SpikeConvBN(mid_c, mid_c, 3, neuron=neuron),
            SpikeConvBN(mid_c, out_c, 1, bias=True, norm=False, neuron=neuron))

    def _init_biases(self) -> None:
        # YOLOv8's priors: uniform box bins, and ~5 objects per 640x640 image spread over classes
        for reg, cls, s in zip(self.reg_branches, self.cls_branches, self.strides):
            nn.init.constant_(reg[-1].conv.bias, 1.0)
            nn.init.constant_(cls[-1].conv.bias, math.log(5 / self.num_classes / (640 / s)**2))

    def init_weights(self) -> None:
        super().init_weights()
        self._init_biases()

    def forward(self, x: Sequence[Tensor]) -> Tuple[List[Tensor], List[Tensor]]:
        """Args:
            x (Sequence[Tensor]): ``[T, B, C, H, W]`` (or ``[B, C, H, W]``) per level.

        Returns:
            tuple: class logits ``[B, num_classes, H, W]`` and box distributions
            ``[B, 4 * reg_max, H, W]`` per level, averaged over T.
        """
        if len(x) != len(self.strides):
            raise ValueError(f'SpikeYOLOHead has {len(self.strides)} levels, got {len(x)} inputs')
        cls_scores, bbox_preds = [], []
        for i, (feat, reg_branch, cls_branch) in enumerate(
                zip(x, self.reg_branches, self.cls_branches)):
            # mmspike's input-layout rule: [T, B, C, H, W], or [B, C, H, W] as one step
            feat = as_time_major(feat, f'SpikeYOLOHead level {i}', self.in_channels[i])
            bbox_preds.append(reduce_time(reg_branch(feat)))
            cls_scores.append(reduce_time(cls_branch(feat)))
        return cls_scores, bbox_preds

    def _integral(self, dist: Tensor) -> Tensor:
        """``[..., 4, reg_max]`` logits -> ``[..., 4]`` expected distances (stride units)."""
        return dist.softmax(-1) @ self.proj.to(dist.dtype)

    def _check_strides(self, featmap_sizes, batch_img_metas: List[dict]) -> None:
        h, w = batch_img_metas[0]['batch_input_shape']
        for size, s in zip(featmap_sizes, self.strides):
            if abs(size[0] - math.ceil(h / s)) > 1 or abs(size[1] - math.ceil(w / s)) > 1:
                raise ValueError(
                    f'SpikeYOLOHead: a {tuple(size)} feature map of a {h}x{w} input is not at '
                    f'stride {s}; strides={self.strides} must be the strides the neck outputs')

    def loss_by_feat(self,
                     cls_scores: List[Tensor],
                     bbox_preds: List[Tensor],
                     batch_gt_instances: List[InstanceData],
                     batch_img_metas: List[dict],
                     batch_gt_instances_ignore: Optional[List[InstanceData]] = None) -> dict:
        """Assign targets with the task-aligned assigner and compute the class, box and DFL losses.

        Returns:
            dict: ``loss_cls``, ``loss_bbox``, ``loss_dfl``.
        """
        if self.train_cfg is None:
            raise RuntimeError('SpikeYOLOHead needs a train_cfg with an assigner to compute losses')
        num_imgs = len(batch_img_metas)
        featmap_sizes = [c.shape[-2:] for c in cls_scores]
        self._check_strides(featmap_sizes, batch_img_metas)
        priors = torch.cat(self.prior_generator.grid_priors(
            featmap_sizes, dtype=cls_scores[0].dtype, device=cls_scores[0].device,
            with_stride=True))
        points, strides = priors[:, :2], priors[:, 2:3]
        cls_flat = torch.cat([c.permute(0, 2, 3, 1).reshape(num_imgs, -1, self.num_classes)
                              for c in cls_scores], 1)
        dist_flat = torch.cat([b.permute(0, 2, 3, 1).reshape(num_imgs, -1, 4, self.reg_max)
                               for b in bbox_preds], 1)
        pred_bboxes = distance2bbox(points, self._integral(dist_flat) * strides)  # [B, N, 4]

        if batch_gt_instances_ignore is None:
            batch_gt_instances_ignore = [None] * num_imgs
        # point priors as zero-size boxes: the assigner takes a prior's centre as the box centre
        point_boxes = torch.cat([points, points], 1)
        cls_targets, box_targets, weights = [], [], []
        for i in range(num_imgs):
            c, b, w = self._targets_single(cls_flat[i].detach(), pred_bboxes[i].detach(),
                                           point_boxes, batch_gt_instances[i],
                                           batch_gt_instances_ignore[i])
            cls_targets.append(c)
            box_targets.append(b)
            weights.append(w)
        cls_targets = torch.cat(cls_targets)
        box_targets = torch.cat(box_targets)
        weights = torch.cat(weights)  # normalised alignment metric, 0 on negatives
        avg_factor = reduce_mean(weights.sum()).clamp_(min=1).item()

        loss_cls = self.loss_cls(cls_flat.reshape(-1, self.num_classes), cls_targets,
                                 avg_factor=avg_factor)
        pos = weights > 0
        if pos.any():
            pos_w = weights[pos]
            loss_bbox = self.loss_bbox(pred_bboxes.reshape(-1, 4)[pos], box_targets[pos],
                                       weight=pos_w, avg_factor=avg_factor)
            pos_points = points.repeat(num_imgs, 1)[pos]
            pos_strides = strides.repeat(num_imgs, 1)[pos]
            target_ltrb = torch.cat([pos_points - box_targets[pos, :2],
                                     box_targets[pos, 2:] - pos_points], 1) / pos_strides
            target_ltrb = target_ltrb.clamp(0, self.reg_max - 1 - 0.01)
            loss_dfl = self.loss_dfl(dist_flat.reshape(-1, 4, self.reg_max)[pos].reshape(
                -1, self.reg_max), target_ltrb.reshape(-1),
                weight=pos_w[:, None].expand(-1, 4).reshape(-1), avg_factor=4.0 * avg_factor)
        else:  # keep every parameter in the graph
            loss_bbox = pred_bboxes.sum() * 0
            loss_dfl = dist_flat.sum() * 0
        return dict(loss_cls=loss_cls, loss_bbox=loss_bbox, loss_dfl=loss_dfl)

    def _targets_single(self, cls_logits: Tensor, pred_bboxes: Tensor, point_boxes: Tensor,
                        gt_instances: InstanceData,
                        gt_instances_ignore: Optional[InstanceData]) -> Tuple[Tensor, ...]:
        """Dense class targets ``[N, num_classes]``, box targets ``[N, 4]`` and the per-prior
        weight ``[N]`` (normalised alignment metric) of one image."""
        num_priors = point_boxes.shape[0]
        cls_targets = cls_logits.new_zeros(num_priors, self.num_classes)
        box_targets = cls_logits.new_zeros(num_priors, 4)
        weights = cls_logits.new_zeros(num_priors)
        gt_bboxes = get_box_tensor(gt_instances.bboxes)
        if gt_bboxes.shape[0] == 0:
            return cls_targets, box_targets, weights
        pred_instances = InstanceData(priors=point_boxes, bboxes=pred_bboxes,
                                      scores=cls_logits.sigmoid())
        result = self.assigner.assign(pred_instances, gt_instances, gt_instances_ignore,
                                      alpha=self.train_cfg.get('alpha', 0.5),
                                      beta=self.train_cfg.get('beta', 6.0))
        pos = result.gt_inds > 0
        if not pos.any():
            return cls_targets, box_targets, weights
        gt_idx = result.gt_inds[pos] - 1
        metrics = result.assign_metrics[pos]
        ious = result.max_overlaps[pos]
        num_gt = gt_bboxes.shape[0]
        # per object: metric / best metric * best IoU (YOLOv8 / TOOD normalisation)
        best_metric = metrics.new_zeros(num_gt).scatter_reduce(0, gt_idx, metrics, 'amax',
                                                               include_self=False)
        best_iou = ious.new_zeros(num_gt).scatter_reduce(0, gt_idx, ious, 'amax',
                                                         include_self=False)
        norm_metric = metrics / (best_metric[gt_idx] + 1e-9) * best_iou[gt_idx]
        weights[pos] = norm_metric
        box_targets[pos] = gt_bboxes[gt_idx]
        cls_targets[pos.nonzero().squeeze(1), result.labels[pos]] = norm_metric
        return cls_targets, box_targets, weights

    def predict_by_feat(self, cls_scores: List[Tensor], bbox_preds: List[Tensor],
                        score_factors=None, batch_img_metas: Optional[List[dict]] = None,
                        cfg=None, rescale: bool = False, with_nms: bool = True):
        if batch_img_metas and 'batch_input_shape' in batch_img_metas[0]:
            self._check_strides([c.shape[-2:] for c in cls_scores], batch_img_metas)
        return super().predict_by_feat(cls_scores, bbox_preds, score_factors, batch_img_metas,
                                       cfg, rescale, with_nms)

    def _predict_by_feat_single(self, cls_score_list: List[Tensor], bbox_pred_list: List[Tensor],
                                score_factor_list, mlvl_priors: List[Tensor], img_meta: dict,
                                cfg: Optional[ConfigDict] = None, rescale: bool = False,
                                with_nms: bool = True) -> InstanceData:
        """Decode one image: per level keep the top ``nms_pre`` (prior, class) pairs above
        ``score_thr``, decode their boxes, then rescale and NMS (``_bbox_post_process``)."""
        cfg = self.test_cfg if cfg is None else cfg
        nms_pre = cfg.get('nms_pre', -1)
        bboxes, scores, labels = [], [], []
        for cls_score, bbox_pred, priors, stride in zip(cls_score_list, bbox_pred_list,
                                                        mlvl_priors, self.strides):
            dist = self._integral(bbox_pred.permute(1, 2, 0).reshape(-1, 4, self.reg_max))
            score = cls_score.permute(1, 2, 0).reshape(-1, self.num_classes).sigmoid()
            score, label, _, kept = filter_scores_and_topk(
                score, cfg.score_thr, nms_pre, dict(dist=dist, priors=priors[:, :2]))
            bboxes.append(distance2bbox(kept['priors'], kept['dist'] * stride,
                                        max_shape=img_meta['img_shape']))
            scores.append(score)
            labels.append(label)
        results = InstanceData(bboxes=torch.cat(bboxes), scores=torch.cat(scores),
                               labels=torch.cat(labels))
        return self._bbox_post_process(results, cfg, rescale, with_nms, img_meta)
