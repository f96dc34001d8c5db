from .event_data_preprocessor import EventClsDataPreprocessor

__all__ = ['EventClsDataPreprocessor']
