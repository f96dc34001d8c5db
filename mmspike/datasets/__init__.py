"""Data readers and builders of the core: event-file formats and the deterministic digit-canvas /
digit-event builders. No OpenMMLab library is imported here; the dataset classes that wrap these
for mmpretrain, mmdet and mmseg live in the task packages (``mmspike.classification.datasets``,
``mmspike.detection.datasets``, ``mmspike.segmentation.datasets``)."""
from .digit_canvas import build_digit_canvas, compose_canvases, digits_split
from .digit_events import build_digit_events, digit_to_events
from .events import (EventFileError, load_atis_bin, load_events, load_npz_events,
                     save_npz_events, validate_events)

__all__ = [
    'build_digit_canvas', 'compose_canvases', 'digits_split', 'build_digit_events',
    'digit_to_events', 'EventFileError', 'load_events', 'load_npz_events', 'load_atis_bin',
    'save_npz_events', 'validate_events'
]
