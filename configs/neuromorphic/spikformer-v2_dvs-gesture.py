# Spikformer V2 on DVS128 Gesture (11 gestures, DVS128 128x128), T=16: the CIFAR10-DVS recipe
# (./spikformer-v2_cifar10-dvs.py) with the release's split and a 200-epoch schedule (the released
# Spikformer code has no DVS128 Gesture script; 200 epochs is this config's choice, not a
# checked upstream value). One sample per labelled gesture of each recording (the labels csv
# rows, events with start <= t < end), cut into 16 frames of equal event count; the test set is the
# release's trials_to_test.txt (users 24-29), evaluated on every clip in order (deterministic).
# The paper's accuracy is not checked here.
#
# Data layout (data/dvs_gesture/DvsGesture, the release unpacked): user*_*.aedat,
# user*_*_labels.csv, trials_to_train.txt, trials_to_test.txt.
# A clip cut from its recording decodes the whole ~60 MB AEDAT 3.1 file; for training, export the
# clips once (python tools/dataset_converters/dvs_gesture_to_clips.py data/dvs_gesture/DvsGesture
# data/dvs_gesture/clips) and add clips_dir='data/dvs_gesture/clips/{train,test}' to the datasets.
_base_ = ['./spikformer-v2_cifar10-dvs.py']

num_classes = 11
model = dict(head=dict(num_classes=num_classes))
data_preprocessor = dict(num_classes=num_classes)

dataset_type = 'mmspike.DVSGestureDataset'
data_root = 'data/dvs_gesture/DvsGesture'
train_dataloader = dict(
    dataset=dict(_delete_=True, type=dataset_type, data_root=data_root, split='train',
                 pipeline=_base_.train_pipeline))
val_dataloader = dict(
    dataset=dict(_delete_=True, type=dataset_type, data_root=data_root, split='test',
                 test_mode=True, pipeline=_base_.test_pipeline))
test_dataloader = val_dataloader

param_scheduler = [
    dict(type='LinearLR', start_factor=1e-2, by_epoch=True, begin=0, end=10,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=True, begin=10, end=200,
         convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=200)
