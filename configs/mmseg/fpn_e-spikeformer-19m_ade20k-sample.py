# CPU demo of fpn_e-spikeformer-19m_4xb4-160k_ade20k-512x512.py (same model and optimizer): 4
# iterations on the 3-image ADE20K sample bundled in the repo, then sliding-window testing with
# mmseg's IoUMetric (see _base_/ade20k_sample.py). The mIoU only shows that the pipeline works.
#
#   python tools/train.py configs/mmseg/fpn_e-spikeformer-19m_ade20k-sample.py
#   python tools/test.py configs/mmseg/fpn_e-spikeformer-19m_ade20k-sample.py \
#       work_dirs/fpn_e-spikeformer-19m_ade20k-sample/iter_4.pth
_base_ = ['./_base_/models/fpn_e-spikeformer.py', './_base_/ade20k_sample.py']

crop_size = (128, 128)
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    test_cfg=dict(mode='slide', crop_size=crop_size, stride=(96, 96)))
