"""scripts/run_demo.sh never deletes what the user did not ask to delete (issue 17, item 2)."""
import os
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.subprocess  # every test here runs a fresh Python process

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / 'scripts' / 'run_demo.sh'


def _run(env_extra: dict, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, **env_extra)
    # A config that does not exist: should the script get past its work-dir check, it fails
    # at once instead of training.
    return subprocess.run(['bash', str(SCRIPT), *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)


@pytest.mark.parametrize('content', ['file', 'subdir'])
def test_existing_work_dir_is_refused_and_kept(tmp_path, content):
    work_dir = tmp_path / 'earlier_results'
    work_dir.mkdir()
    keep = work_dir / 'metrics.json' if content == 'file' else work_dir / 'epoch_1' / 'a.pth'
    keep.parent.mkdir(parents=True, exist_ok=True)
    keep.write_text('{"bbox_mAP": 0.5}')
    res = _run({'WORK_DIR': str(work_dir)}, 'configs/does_not_exist.py')
    assert keep.read_text() == '{"bbox_mAP": 0.5}', 'run_demo.sh deleted an existing WORK_DIR'
    assert res.returncode != 0
    assert 'WORK_DIR' in res.stderr and str(work_dir) in res.stderr, res.stderr


def test_work_dir_that_is_a_file_is_refused(tmp_path):
    target = tmp_path / 'notes.txt'
    target.write_text('mine')
    res = _run({'WORK_DIR': str(target)}, 'configs/does_not_exist.py')
    assert target.read_text() == 'mine'
    assert res.returncode != 0 and str(target) in res.stderr, res.stderr


def test_missing_config_is_named(tmp_path):
    res = _run({'WORK_DIR': str(tmp_path / 'new')}, 'configs/does_not_exist.py')
    assert res.returncode != 0
    assert 'configs/does_not_exist.py' in res.stderr, res.stderr
    assert not (tmp_path / 'new').exists(), 'nothing should be created for a bad config'
