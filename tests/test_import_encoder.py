"""Importing PyTorch GE2E encoders (ge2e_jax.pretrained, experiments/import_encoder.py)
without torch: a committed RTVC-format checkpoint and torch's own embeddings of it."""

import os
import subprocess
import sys

import numpy as np
import pytest

from ge2e_jax import export_io, inference, model, model_card, pretrained
from tests import torch_fixtures
import cli_cases  # tests/cli_cases.py (pytest puts tests/ on sys.path)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def tiny():
  return pretrained.load(torch_fixtures.RTVC_TINY, "rtvc")


def test_architecture_comes_from_the_tensors(tiny):
  config, params = tiny
  assert (config.cells, config.layers, config.head, config.projection, config.n_mels) == (
      8, 2, 6, 0, 40)
  assert config.window_rule == "partials" and inference.partial_hop_frames(config) == 80
  assert inference.partial_hop_frames(pretrained.FORMATS["resemblyzer"]) == 77
  assert model.embedding_dim(config) == 6
  assert sorted(params) == ["head", "lstm_0", "lstm_1"]


def test_embeddings_equal_torchs(tiny):
  config, params = tiny
  expected = np.load(torch_fixtures.RTVC_TINY_EXPECTED)
  got = model.SpeakerEncoder(config).apply({"params": params}, expected["mels"],
                                           method=model.SpeakerEncoder.embed_features)
  np.testing.assert_allclose(np.asarray(got), expected["embeds"], atol=1e-5)


def test_wrong_checkpoints_are_refused_with_one_line(tmp_path):
  with pytest.raises(ValueError, match="expected LSTM layers without projection and a linear"):
    pretrained.load(torch_fixtures.FILES["zip"], "resemblyzer")  # a state dict, not an encoder
  with pytest.raises(ValueError, match="unknown checkpoint format"):
    pretrained.load(torch_fixtures.RTVC_TINY, "nope")


def run_import(*args):
  return subprocess.run([sys.executable, "-m", "experiments.import_encoder", *args], cwd=ROOT,
                        capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=ROOT))


@pytest.mark.slow
def test_cli_writes_an_export_that_embeds_like_the_params(tiny, tmp_path):
  output = tmp_path / "rtvc_export"
  # The import, then the same import again (it needs --overwrite): one process.
  args = ["--format=rtvc", f"--checkpoint={torch_fixtures.RTVC_TINY}", f"--output={output}",
          "--platforms=cpu"]
  (code, _, stderr), (again_code, _, again_stderr) = cli_cases.run(
      "experiments.import_encoder:run", [args, args])[0]
  assert code == 0, stderr[-2000:]
  config, params = tiny
  assert export_io.verify_checksums(output)  # import_encoder lists its files too
  embedder = inference.load(output)
  assert embedder.config == config and embedder.hop_frames == 80
  card = model_card.read(output)
  imported = card["training"]["imported"]
  assert imported["format"] == "rtvc" and "MIT" in imported["licence"]
  assert len(imported["sha256"]) == 64 and card["evaluations"] == []
  rng = np.random.default_rng(0)
  wav = (0.05 * rng.standard_normal(30000)).astype(np.float32)
  want = inference.Embedder(config, params, trim=inference.TrimOptions(enabled=False))
  np.testing.assert_allclose(export_io.load_jax_export(output)(wav[None])[0],
                             want.embed_prepared([wav])[0], atol=1e-5)
  # A second import into the same place needs --overwrite; the first export stays.
  assert again_code == 1 and "--overwrite" in again_stderr.strip().splitlines()[-1]
  assert export_io.is_export_dir(output)


@pytest.mark.slow
def test_cli_refuses_a_malicious_checkpoint_in_one_line(tmp_path):
  marker, bad = tmp_path / "pwned", tmp_path / "bad.pt"
  bad.write_bytes(b"\x80\x02cposix\nsystem\nq\x00X\x0c\x00\x00\x00touch pwnedq\x01\x85q\x02Rq\x03.")
  result = run_import("--format=resemblyzer", f"--checkpoint={bad}",
                      f"--output={tmp_path / 'out'}", "--platforms=cpu")
  last = result.stderr.strip().splitlines()[-1]
  assert result.returncode == 1 and "refusing to load the global posix.system" in last, last
  assert "Traceback" not in result.stderr
  assert not marker.exists() and not (tmp_path / "out").exists()


def test_fine_tune_names_every_field_that_differs_from_the_source(tiny, tmp_path):
  """train.init_from: a run whose encoder would compute something else stops in one line."""
  from experiments import finetune  # pylint: disable=g-import-not-at-top
  config, params = tiny
  export_io.write_params(str(tmp_path), config, params, {"window_frames": 160})
  finetune.check_source_config(str(tmp_path), model.config_to_dict(config), 160)  # same: fine
  other = model.config_to_dict(model.preset("td")) | {"scan_unroll": 4}
  with pytest.raises(ValueError) as err:
    finetune.check_source_config(str(tmp_path), other, 80)
  message = str(err.value)
  for expected in ("--config.model.cells=8", "--config.model.projection=0",
                   "--config.model.log_mel=False", "--config.model.window_rule='partials'",
                   "--config.eval.window_frames=160"):
    assert expected in message, message
  assert "scan_unroll" not in message and "\n" not in message
