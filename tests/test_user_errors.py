"""One line for every user error (issue 19, item 5): embed and verify on a workdir without a
usable step, a non-finite --threshold, and a NumPy masked array handed to the Embedder."""

import os
import subprocess
import sys

import jax
import numpy as np
import pytest
import soundfile as sf

from ge2e_jax import checkpoint, inference, model, optim, train_step

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = model.EncoderConfig(cells=8, projection=4)


@pytest.fixture(scope="module")
def params():
  return train_step.init_params(jax.random.key(0), CONFIG)


@pytest.fixture(scope="module")
def damaged_workdir(tmp_path_factory, params):
  """config.json and one step whose array data has 64 bytes overwritten: no usable step."""
  path = tmp_path_factory.mktemp("run")
  checkpoint.write_config(os.fspath(path), {"model": model.config_to_dict(CONFIG)})
  ck = checkpoint.Checkpointer(os.fspath(path))
  ck.save(1, train_step.init_state(params, optim.make_optimizer()), {"data_step": 1, "seed": 0})
  ck.close()
  state_dir = path / "checkpoints" / "1" / "state"
  data = max((os.path.join(r, f) for r, _, fs in os.walk(state_dir) for f in fs),
             key=os.path.getsize)
  with open(data, "r+b") as f:
    f.seek(os.path.getsize(data) // 2)
    f.write(b"\xff" * 64)
  return path


@pytest.fixture(scope="module")
def wav(tmp_path_factory):
  path = tmp_path_factory.mktemp("audio") / "a.wav"
  sf.write(path, (0.1 * np.random.default_rng(0).standard_normal(16000)).astype(np.float32),
           16000)
  return os.fspath(path)


def run_cli(module, *args):
  return subprocess.run([sys.executable, "-m", f"experiments.{module}", *map(str, args)],
                        cwd=REPO, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("command", ["embed", "verify"])
def test_a_workdir_without_a_usable_step_is_one_line(damaged_workdir, wav, tmp_path, command):
  args = ([f"--output={tmp_path / 'o.npz'}", wav] if command == "embed"
          else ["--enroll", wav, "--test", wav])
  result = run_cli(command, f"--model={damaged_workdir}", *args)
  assert result.returncode == 1
  last = result.stderr.strip().splitlines()[-1]
  assert last.startswith(f"{command}: cannot load --model") and "no usable checkpoint" in last
  assert "Traceback" not in result.stderr and "Event loop is closed" not in result.stderr


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_verify_threshold_must_be_finite(wav, value):
  result = run_cli("verify", "--model=/nowhere", "--enroll", wav, "--test", wav,
                   f"--threshold={value}")
  assert result.returncode == 2
  (line,) = result.stderr.strip().splitlines()
  assert line.startswith("verify: ") and "--threshold must be a finite number" in line


def test_embedder_refuses_masked_arrays_and_non_finite_thresholds(params):
  embedder = inference.Embedder(CONFIG, params["encoder"], window_frames=40)
  wav = (0.1 * np.random.default_rng(0).standard_normal(8000)).astype(np.float32)
  masked = np.ma.masked_array(wav, mask=np.arange(8000) > 4000)
  with pytest.raises(ValueError, match="clip: a NumPy masked array"):
    embedder.prepare(masked, 16000, name="clip")
  with pytest.raises(ValueError, match="waveform 0: a NumPy masked array"):
    embedder.embed_utterances([masked], 16000)
  with pytest.raises(ValueError, match="waveform 1: a NumPy masked array"):
    embedder.embed_prepared([wav, masked])
  assert embedder.embed_prepared([masked.compressed()]).shape == (1, CONFIG.projection)
  with pytest.raises(ValueError, match="threshold must be a finite number"):
    embedder.threshold(threshold=float("nan"))
