"""Bad neuron arguments are ValueErrors naming the argument, also under ``python -O``."""
import subprocess
import sys
from pathlib import Path

import pytest

from mmspike.models.neurons import ILIF, IntegerNeuron


@pytest.mark.parametrize('leak', [-0.1, 1.5, float('nan'), '0.25', True])
def test_ilif_leak_out_of_range(leak):
    with pytest.raises(ValueError, match='leak must be a number in'):
        ILIF(leak=leak)


def test_reset_and_norm():
    with pytest.raises(ValueError, match="reset must be 'soft' or 'hard'"):
        IntegerNeuron(leak=0.5, reset='zero')
    with pytest.raises(ValueError, match='norm must be > 0'):
        IntegerNeuron(norm=0.0)


@pytest.mark.subprocess
def test_leak_check_holds_with_python_O():
    code = 'from mmspike.models.neurons import ILIF\ntry:\n    ILIF(leak=2.0)\n' \
           'except ValueError as e:\n    print("refused:", e)\n'
    out = subprocess.run([sys.executable, '-O', '-c', code], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[3])
    assert 'refused: leak must be a number in [0, 1], got 2.0' in out.stdout, out.stderr[-2000:]
