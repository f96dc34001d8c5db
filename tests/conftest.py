import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / 'shared' / 'data'


@pytest.fixture(scope='session')
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope='session')
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f'sample data not found at {SHARED_DATA} (clone with ../shared beside the repo)')
    return SHARED_DATA


def _manager_classes():
    from mmengine.utils import ManagerMixin
    todo, seen = [ManagerMixin], []
    while todo:
        cls = todo.pop()
        seen.append(cls)
        todo.extend(cls.__subclasses__())
    return seen


def _restore_mmengine_globals():
    saved = {cls: cls._instance_dict.copy() for cls in _manager_classes()}
    yield
    for cls in _manager_classes():
        cls._instance_dict.clear()
        cls._instance_dict.update(saved.get(cls, {}))


# MMEngine keeps global named instances (ManagerMixin: DefaultScope, Visualizer, MessageHub, MMLogger).
# A test must not change how later tests resolve registry names (init_default_scope), nor hand them
# its visualizer: a second Runner in the same process gets the first one's 'visualizer' instance,
# which writes into the first test's work_dir (deleted once that test passed). Restore them after
# every test and every module.
_isolate_mmengine_globals_module = pytest.fixture(scope='module', autouse=True)(
    _restore_mmengine_globals)
_isolate_mmengine_globals = pytest.fixture(autouse=True)(_restore_mmengine_globals)
