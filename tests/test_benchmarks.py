"""benchmarks/gpu.sh --tiny on the CPU: every part runs without TensorFlow, logs land in $OUT
and the summary table comes last."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _has_torch() -> bool:
  try:
    import torch  # pylint: disable=g-import-not-at-top,unused-import
  except ImportError:
    return False
  return True


@pytest.mark.slow
def test_gpu_script_runs_tiny_without_tensorflow(tmp_path):
  no_tf = tmp_path / "no_tf" / "tensorflow"  # as on the GPU host: importing TF fails
  no_tf.mkdir(parents=True)
  (no_tf / "__init__.py").write_text("raise ImportError('no TensorFlow on the GPU host')\n")
  out = tmp_path / "out"
  env = dict(os.environ, OUT=str(out), PYTHON=sys.executable, JAX_PLATFORMS="cpu",
             PYTHONPATH=str(no_tf.parent))
  proc = subprocess.run(["bash", "benchmarks/gpu.sh", "--tiny"], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stdout + proc.stderr
  status = (out / "status.txt").read_text()
  assert "train_step ok" in status and "inference ok" in status, status
  lines = proc.stdout.rstrip().splitlines()
  table = lines[next(i for i, line in enumerate(lines) if line.startswith("| benchmark |")):]
  assert all(line.startswith("|") for line in table)  # the table is the last thing printed
  rows = {tuple(cell.strip() for cell in line.strip("|").split("|")[:2]): line
          for line in table[2:]}
  assert {("train step", "td 4x2x20"), ("inference", "td window 20"),
          ("train step, augmentation p=0.5", "td 4x2x20")} <= set(rows)
  if not _has_torch():  # the PyTorch side is skipped, and says why
    assert "torch is not installed" in proc.stdout
    assert rows[("train step", "td 4x2x20")].split("|")[4].strip() == "-"
  for log in ("train_step.log", "inference.log", "augment.log"):
    assert (out / log).stat().st_size > 0, log
