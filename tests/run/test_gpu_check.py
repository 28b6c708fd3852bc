"""experiments/gpu_check.py runs its CPU half end to end (``--quick``), with every agreement
check passing: the GPU machine then only adds the device."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_gpu_check_quick_on_cpu() -> None:
    done = subprocess.run([sys.executable, str(ROOT / "experiments" / "gpu_check.py"), "--device", "cpu", "--quick"],
                          capture_output=True, text=True, timeout=600, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert "FAIL" not in out, out
    assert out.count("| pass |") >= 10
    assert "RL² end to end, bandit" in out and "MAML Conv-4" in out and "RL² bandit k=10 n=100 after" in out
