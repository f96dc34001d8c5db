# mmdet's runtime, with mmdet as the default scope and mmspike's models imported (the spiking
# backbones, necks and heads the configs name as `mmspike.*`).
_base_ = 'mmdet::_base_/default_runtime.py'

custom_imports = dict(imports=['mmspike.detection'], allow_failed_imports=False)
default_scope = 'mmdet'
