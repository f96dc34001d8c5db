# E3DSNN-S on ModelNet40 (3,271,144 parameters): upstream E-3DSNN's Pointcept config
# cls-E3DSNN-v1m1-0-S (bollossom/E-3DSNN@dbe5d17): the -T recipe with embed 24 and stage
# channels 24/48/96/160.
_base_ = ['./e3dsnn-t_modelnet40.py']

model = dict(backbone=dict(arch='small'), head=dict(in_channels=160))
