from .event_transforms import (CenterCropClip, EventsToFrames, FramesToPolarity, LoadEvents,
                               LoadFrameClip, PackEventInputs, RandomFlipClip, ResizeClip,
                               SampleEventWindow, SampleFrameClip, events_to_frames, list_frames)
from .neuromorphic_transforms import LoadEventClip

__all__ = [
    'LoadEvents', 'SampleEventWindow', 'EventsToFrames', 'SampleFrameClip', 'LoadFrameClip',
    'ResizeClip', 'CenterCropClip', 'RandomFlipClip', 'FramesToPolarity', 'PackEventInputs',
    'events_to_frames', 'list_frames', 'LoadEventClip'
]
