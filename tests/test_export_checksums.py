"""Exports verify themselves: every file is listed with its sha256 in checksums.json, and
``inference.load``, ``load_jax_export`` and the CLIs refuse a damaged export with one line
naming the file. A real export dir (orbax params, config, card, jax.export) is
written once; each case damages a copy."""

import json
import os
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest
import soundfile as sf

from experiments import export_writer
from ge2e_jax import export_io, inference, model, model_card, train_step

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = model.EncoderConfig(cells=8, projection=4)
WINDOW_FRAMES = 40


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory):
  path = os.fspath(tmp_path_factory.mktemp("export") / "export")
  os.mkdir(path)
  params = train_step.init_params(jax.random.key(0), CONFIG)["encoder"]
  export_io.write_params(path, CONFIG, params, {"window_frames": WINDOW_FRAMES})
  model_card.write(path, model_card.new(0, WINDOW_FRAMES, model.config_to_dict(CONFIG)))
  embedder = inference.Embedder(CONFIG, params, window_frames=WINDOW_FRAMES)
  export_io.write_jax_export(path, export_writer.export_jax(embedder, ["cpu"]))
  export_io.write_checksums(path)
  return path


@pytest.fixture
def copy(export_dir, tmp_path):
  target = os.fspath(tmp_path / "export")
  shutil.copytree(export_dir, target)
  return target


def _params_file(directory):
  """The largest file under params/ (the array data)."""
  files = [os.path.join(r, f) for r, _, fs in os.walk(os.path.join(directory, "params"))
           for f in fs]
  return max(files, key=os.path.getsize)


def flip_bytes(d):
  path = _params_file(d)
  data = bytearray(open(path, "rb").read())
  middle = len(data) // 2
  data[middle:middle + 64] = bytes(b ^ 0xFF for b in data[middle:middle + 64])
  open(path, "wb").write(bytes(data))
  return path


def truncate(d):
  path = _params_file(d)
  os.truncate(path, os.path.getsize(path) // 2)
  return path


def delete(d):
  path = _params_file(d)
  os.remove(path)
  return path


def edit_config(d):
  path = os.path.join(d, export_io.CONFIG_FILE)
  values = json.load(open(path))
  values["export"]["window_frames"] = 80
  json.dump(values, open(path, "w"))
  return path


def replace_ocdbt_manifest(d):
  path = os.path.join(d, "params", "manifest.ocdbt")  # the top-level one orbax reads first
  open(path, "wb").write(b"\0" * os.path.getsize(path))
  return path


def add_file(d):
  path = os.path.join(d, "params", "extra")
  open(path, "wb").write(b"x")
  return path


DAMAGE = {f.__name__: f for f in (flip_bytes, truncate, delete, edit_config,
                                  replace_ocdbt_manifest, add_file)}


def test_checksums_list_every_file_and_a_clean_export_loads(export_dir):
  with open(os.path.join(export_dir, export_io.CHECKSUMS_FILE)) as f:
    listed = json.load(f)["files"]
  on_disk = {os.path.relpath(os.path.join(r, f), export_dir)
             for r, _, fs in os.walk(export_dir) for f in fs} - {export_io.CHECKSUMS_FILE}
  assert set(listed) == on_disk and len(on_disk) >= 5
  assert export_io.verify_checksums(export_dir) is True
  assert inference.load(export_dir).dim == CONFIG.projection


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_export_is_refused_naming_the_file(copy, damage):
  path = DAMAGE[damage](copy)
  with pytest.raises(export_io.DamagedExportError) as err:
    inference.load(copy)
  assert str(err.value).startswith(f"{path}: ") and "\n" not in str(err.value)
  with pytest.raises(export_io.DamagedExportError, match="export the model again"):
    export_io.load_jax_export(copy)


def test_a_damaged_checksum_list_is_refused(copy):
  path = os.path.join(copy, export_io.CHECKSUMS_FILE)
  open(path, "w").write("[1, 2]")
  with pytest.raises(export_io.DamagedExportError, match=f"{path}: expected"):
    inference.load(copy)
  open(path, "w").write("{")
  with pytest.raises(export_io.DamagedExportError, match="not a readable checksum list"):
    inference.load(copy)


def test_an_export_without_checksums_loads_with_one_warning(copy, caplog):
  os.remove(os.path.join(copy, export_io.CHECKSUMS_FILE))
  assert inference.load(copy).dim == CONFIG.projection
  (record,) = [r for r in caplog.records if export_io.CHECKSUMS_FILE in r.getMessage()]
  assert record.levelname == "WARNING" and "loaded unverified" in record.getMessage()


def test_files_beside_the_exports_own_are_allowed(copy):
  os.makedirs(os.path.join(copy, "eval_test"))
  open(os.path.join(copy, "eval_test", "eval.json"), "w").write("{}")
  open(os.path.join(copy, "README"), "w").write("notes")
  assert export_io.verify_checksums(copy) is True


def test_verify_false_skips_the_check(copy):
  add_file(copy)
  assert inference.load(copy, verify=False).dim == CONFIG.projection


def test_a_rewritten_model_card_is_recorded_in_the_list(copy):
  card = model_card.read(copy)
  card["note"] = "calibrated again"
  model_card.write(copy, card)
  with pytest.raises(export_io.DamagedExportError, match=model_card.FILE):
    export_io.verify_checksums(copy)
  export_io.update_checksum(copy, model_card.FILE)
  assert export_io.verify_checksums(copy) is True


@pytest.fixture(scope="module")
def wav(tmp_path_factory):
  path = tmp_path_factory.mktemp("audio") / "a.wav"
  rng = np.random.default_rng(0)
  sf.write(path, (0.1 * rng.standard_normal(16000)).astype(np.float32), 16000)
  return os.fspath(path)


def run_cli(module, *args):
  return subprocess.run([sys.executable, "-m", f"experiments.{module}", *args], cwd=REPO,
                        capture_output=True, text=True, timeout=120)


@pytest.mark.slow
@pytest.mark.parametrize("command, damage", [
    ("embed", "flip_bytes"), ("verify", "truncate"), ("diarize", "edit_config"),
    ("evaluate", "replace_ocdbt_manifest")])
def test_clis_refuse_a_damaged_export_in_one_line(copy, wav, tmp_path, command, damage):
  path = DAMAGE[damage](copy)
  args = {"embed": [f"--output={tmp_path / 'out.npz'}", wav],
          "verify": ["--enroll", wav, "--test", wav],
          "diarize": [wav],
          "evaluate": [f"--speaker_dir={tmp_path}", "--noplots"]}[command]
  result = run_cli(command, f"--model={copy}", *args)
  assert result.returncode != 0
  (line,) = result.stderr.strip().splitlines()
  assert path in line and "export the model again" in line, line
  assert not os.path.exists(tmp_path / "out.npz")
