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


def _restore_default_scope():
    from mmengine.registry import DefaultScope
    saved = DefaultScope._instance_dict.copy()
    yield
    DefaultScope._instance_dict.clear()
    DefaultScope._instance_dict.update(saved)


# Tests (and module fixtures) that call ``init_default_scope`` must not change how later tests
# resolve registry names: restore MMEngine's default scope after every test and every module.
_isolate_default_scope_module = pytest.fixture(scope='module', autouse=True)(_restore_default_scope)
_isolate_default_scope = pytest.fixture(autouse=True)(_restore_default_scope)
