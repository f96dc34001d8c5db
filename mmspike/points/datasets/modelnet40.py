"""ModelNet40 point-cloud classification in its two common release layouts.

``modelnet40_normal_resampled`` (PointNet++; used by Pointcept and E-3DSNN)::

    data_root/modelnet40_shape_names.txt        40 class names, one a line (label = line index)
    data_root/modelnet40_{train,test}.txt       shape names, e.g. airplane_0001
    data_root/<class>/<class>_<NNNN>.txt        10,000 lines of "x,y,z,nx,ny,nz"

``modelnet40_ply_hdf5_2048`` (PointNet)::

    data_root/shape_names.txt                   40 class names
    data_root/{train,test}_files.txt            the HDF5 files of the split (optional: without
                                                it, ply_data_{split}*.h5 in sorted order)
    data_root/ply_data_{split}<k>.h5            data [S, P, 3] float32, label [S, 1] int,
                                                normal [S, P, 3] (read if use_normals)

Points come out as ``results['points']``: float32 ``[N, 6]`` (xyz + normal) or ``[N, 3]``.
"""
import glob
import os
import os.path as osp
from typing import List, Optional

import numpy as np
from mmpretrain.datasets import BaseDataset

from mmspike.registry import DATASETS

__all__ = ['ModelNet40Dataset', 'read_resampled_txt', 'farthest_point_sample',
           'MODELNET40_CLASSES']

MODELNET40_CLASSES = (
    'airplane', 'bathtub', 'bed', 'bench', 'bookshelf', 'bottle', 'bowl', 'car', 'chair', 'cone',
    'cup', 'curtain', 'desk', 'door', 'dresser', 'flower_pot', 'glass_box', 'guitar', 'keyboard',
    'lamp', 'laptop', 'mantel', 'monitor', 'night_stand', 'person', 'piano', 'plant', 'radio',
    'range_hood', 'sink', 'sofa', 'stairs', 'stool', 'table', 'tent', 'toilet', 'tv_stand', 'vase',
    'wardrobe', 'xbox')


def _read_names(path: str, what: str) -> List[str]:
    if not osp.isfile(path):
        raise FileNotFoundError(f'ModelNet40: {what} not found: {path}')
    with open(path) as f:
        names = [line.strip() for line in f if line.strip()]
    if not names:
        raise ValueError(f'ModelNet40: {what} is empty: {path}')
    return names


def read_resampled_txt(path: str, channels: int = 6) -> np.ndarray:
    """Read one ``modelnet40_normal_resampled`` file: lines of ``x,y,z,nx,ny,nz``.

    Returns float32 ``[N, channels]`` (the first ``channels`` columns). A missing, empty,
    non-numeric, ragged or non-finite file is an error naming the file.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'ModelNet40: point file not found: {path}')
    if osp.getsize(path) == 0:
        raise ValueError(f'ModelNet40: {path} holds no points (empty file)')
    try:
        data = np.loadtxt(path, delimiter=',', dtype=np.float32, ndmin=2)
    except ValueError as e:
        raise ValueError(f'ModelNet40: {path} is not a resampled point file (lines of 6 '
                         f'comma-separated numbers): {e}') from None
    if data.shape[0] == 0:
        raise ValueError(f'ModelNet40: {path} holds no points')
    if data.shape[1] != 6:
        raise ValueError(f'ModelNet40: {path} has {data.shape[1]} columns per line, expected 6 '
                         '(x,y,z,nx,ny,nz)')
    if not np.isfinite(data).all():
        raise ValueError(f'ModelNet40: {path} holds NaN or Inf values')
    return np.ascontiguousarray(data[:, :channels])


def farthest_point_sample(xyz: np.ndarray, num: int) -> np.ndarray:
    """Indices of ``num`` points chosen by farthest point sampling, starting at point 0 (as
    Pointcept's ``pointops.farthest_point_sampling``; ties may be broken differently)."""
    pts = np.ascontiguousarray(xyz[:, :3], dtype=np.float32)
    n = pts.shape[0]
    if num > n:
        raise ValueError(f'cannot sample {num} points from a cloud of {n}')
    idx = np.empty(num, dtype=np.int64)
    dist = np.full(n, np.inf, dtype=np.float32)
    far = 0
    for i in range(num):
        idx[i] = far
        d = pts - pts[far]
        np.minimum(dist, np.einsum('ij,ij->i', d, d), out=dist)
        far = int(dist.argmax())
    return idx


@DATASETS.register_module()
class ModelNet40Dataset(BaseDataset):
    """ModelNet40 for mmpretrain-style classification (``gt_label``, ``points``).

    Args:
        data_root (str): The ``modelnet40_normal_resampled`` or ``modelnet40_ply_hdf5_2048``
            folder.
        split (str): ``'train'`` or ``'test'``. Defaults to ``'train'``.
        layout (str): ``'resampled'``, ``'hdf5'`` or ``'auto'`` (by the shape-names file found).
            Defaults to ``'auto'``.
        use_normals (bool): Keep the normals (6 channels) or only xyz (3). Defaults to True.
        num_points (int, optional): Keep this many points per shape: ``'first'`` ones or by
            ``'fps'`` (farthest point sampling, as upstream E-3DSNN: 8192 of the 10,000 points).
            A shape with fewer points is an error. Defaults to None (all points).
        sampling (str): ``'first'`` or ``'fps'``. Defaults to ``'first'``.
        sampling_cache (str, optional): Folder keeping the FPS indices of every shape once they
            are computed (FPS of 8192 of 10,000 points takes seconds on a CPU core; upstream
            likewise computes them once and stores a record). Written atomically, so workers may
            share it. Defaults to None (no cache: FPS on every read).
        pipeline (list): Transforms. Defaults to ``()``.
        **kwargs: Other arguments of :class:`mmpretrain.datasets.BaseDataset`.
    """
    METAINFO = {'classes': MODELNET40_CLASSES}
    LAYOUTS = ('auto', 'resampled', 'hdf5')

    def __init__(self, data_root: str, split: str = 'train', layout: str = 'auto',
                 use_normals: bool = True, num_points: Optional[int] = None,
                 sampling: str = 'first', sampling_cache: Optional[str] = None, pipeline=(),
                 **kwargs) -> None:
        if split not in ('train', 'test'):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        if layout not in self.LAYOUTS:
            raise ValueError(f'layout must be one of {self.LAYOUTS}, got {layout!r}')
        if sampling not in ('first', 'fps'):
            raise ValueError(f"sampling must be 'first' or 'fps', got {sampling!r}")
        if num_points is not None and num_points < 1:
            raise ValueError(f'num_points must be >= 1 or None, got {num_points}')
        if not osp.isdir(data_root):
            raise FileNotFoundError(f'ModelNet40: data_root is not a folder: {data_root}')
        if layout == 'auto':
            if osp.isfile(osp.join(data_root, 'modelnet40_shape_names.txt')):
                layout = 'resampled'
            elif osp.isfile(osp.join(data_root, 'shape_names.txt')):
                layout = 'hdf5'
            else:
                raise FileNotFoundError(
                    f'ModelNet40: {data_root} holds neither modelnet40_shape_names.txt (resampled '
                    'txt layout) nor shape_names.txt (HDF5 layout)')
        self.split = split
        self.layout = layout
        self.use_normals = use_normals
        self.num_points = num_points
        self.sampling = sampling
        self.sampling_cache = sampling_cache
        names_file = 'modelnet40_shape_names.txt' if layout == 'resampled' else 'shape_names.txt'
        classes = tuple(_read_names(osp.join(data_root, names_file), 'class-name file'))
        metainfo = dict(kwargs.pop('metainfo', None) or {}, classes=classes)
        super().__init__(ann_file='', data_root=data_root, pipeline=pipeline,
                         metainfo=metainfo, **kwargs)

    # ------------------------------------------------------------------ loading
    def load_data_list(self) -> List[dict]:
        if self.layout == 'resampled':
            return self._load_resampled()
        return self._load_hdf5()

    def _load_resampled(self) -> List[dict]:
        root = self.data_root
        split_file = osp.join(root, f'modelnet40_{self.split}.txt')
        shapes = _read_names(split_file, f'{self.split} split file')
        index = {c: i for i, c in enumerate(self.CLASSES)}
        data_list, missing = [], []
        for i, shape in enumerate(shapes):
            cls = shape.rsplit('_', 1)[0]
            if cls not in index:
                raise ValueError(f'ModelNet40: {split_file} line {i + 1}: shape {shape!r} is of an '
                                 f'unknown class {cls!r}')
            path = osp.join(root, cls, f'{shape}.txt')
            if not osp.isfile(path):
                missing.append(path)
            data_list.append(dict(points_path=path, gt_label=index[cls], sample_idx=i))
        if missing:
            raise FileNotFoundError(f'ModelNet40: {len(missing)} point files of {split_file} are '
                                    f'missing, e.g. {missing[:3]}')
        return data_list

    def _load_hdf5(self) -> List[dict]:
        try:
            import h5py
        except ImportError as e:  # pragma: no cover
            raise ImportError('the ModelNet40 HDF5 layout needs h5py (pip install h5py)') from e
        root = self.data_root
        list_file = osp.join(root, f'{self.split}_files.txt')
        if osp.isfile(list_file):
            files = [osp.join(root, osp.basename(p)) for p in _read_names(list_file, 'file list')]
        else:
            files = sorted(glob.glob(osp.join(root, f'ply_data_{self.split}*.h5')))
            if not files:
                raise FileNotFoundError(f'ModelNet40: no {self.split}_files.txt and no '
                                        f'ply_data_{self.split}*.h5 in {root}')
        data_list = []
        for path in files:
            if not osp.isfile(path):
                raise FileNotFoundError(f'ModelNet40: HDF5 file not found: {path}')
            try:
                with h5py.File(path, 'r') as f:
                    keys = set(f.keys())
                    need = {'data', 'label'} | ({'normal'} if self.use_normals else set())
                    if not need <= keys:
                        hint = ' (set use_normals=False for xyz only)' \
                            if 'normal' in need - keys else ''
                        raise KeyError(f'ModelNet40: {path} lacks {sorted(need - keys)}{hint}')
                    xyz = np.asarray(f['data'], dtype=np.float32)
                    labels = np.asarray(f['label']).reshape(-1)
                    normal = np.asarray(f['normal'], dtype=np.float32) \
                        if self.use_normals else None
            except OSError as e:
                raise OSError(f'ModelNet40: cannot read HDF5 file {path}: {e}') from None
            if xyz.ndim != 3 or xyz.shape[2] != 3 or labels.shape[0] != xyz.shape[0] or \
                    (normal is not None and normal.shape != xyz.shape):
                raise ValueError(f'ModelNet40: {path} has data {xyz.shape}, label '
                                 f'{labels.shape}' + (f', normal {normal.shape}' if normal is not
                                                      None else '') + '; expected data [S, P, 3], '
                                 'label [S] or [S, 1], normal like data')
            if labels.min() < 0 or labels.max() >= len(self.CLASSES):
                raise ValueError(f'ModelNet40: {path} has labels outside 0..'
                                 f'{len(self.CLASSES) - 1}')
            if not np.isfinite(xyz).all() or (normal is not None and not np.isfinite(normal).all()):
                raise ValueError(f'ModelNet40: {path} holds NaN or Inf values')
            for s in range(xyz.shape[0]):
                pts = xyz[s] if normal is None else np.concatenate([xyz[s], normal[s]], 1)
                data_list.append(dict(points=pts, gt_label=int(labels[s]),
                                      points_path=f'{path}[{s}]', sample_idx=len(data_list)))
        return data_list

    def get_data_info(self, idx: int) -> dict:
        info = super().get_data_info(idx)
        if 'points' not in info:
            info['points'] = read_resampled_txt(info['points_path'],
                                                6 if self.use_normals else 3)
        pts = info['points']
        if self.num_points is not None:
            if pts.shape[0] < self.num_points:
                raise ValueError(f'ModelNet40: {info["points_path"]} has {pts.shape[0]} points, '
                                 f'fewer than num_points={self.num_points}')
            keep = np.arange(self.num_points) if self.sampling == 'first' else \
                self._fps(info, pts)
            info['points'] = np.ascontiguousarray(pts[keep])
        return info

    def _fps(self, info: dict, pts: np.ndarray) -> np.ndarray:
        if self.sampling_cache is None:
            return farthest_point_sample(pts, self.num_points)
        name = osp.basename(info['points_path']).replace('.txt', '').replace('[', '_').rstrip(']')
        path = osp.join(self.sampling_cache, f'fps{self.num_points}', f'{name}.npy')
        if osp.isfile(path):
            idx = np.load(path)
            if idx.shape != (self.num_points, ) or idx.max() >= len(pts):
                raise ValueError(f'ModelNet40: sampling cache {path} does not fit '
                                 f'{info["points_path"]} ({len(pts)} points); delete it')
            return idx
        idx = farthest_point_sample(pts, self.num_points)
        os.makedirs(osp.dirname(path), exist_ok=True)
        tmp = f'{path}.{os.getpid()}.tmp.npy'
        np.save(tmp, idx.astype(np.int32))
        os.replace(tmp, path)
        return idx
