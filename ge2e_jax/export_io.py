"""The export directory written by ``experiments/export.py``, read without TensorFlow.

Layout of an export dir:
  config.json           {"model": encoder config (model.config_to_dict), "export": metadata:
                        format, source workdir and step, sample rate, window/hop frames,
                        platforms, signature}
  params/               orbax checkpoint of {"encoder": encoder params}
  d_vector.jax_export   ``jax.export`` serialisation of waveform -> d-vectors (params inside)
  saved_model/          TensorFlow SavedModel (jax2tf) of the same function
  checksums.json        {"format", "files": {relative path: {"sha256", "bytes"}}} of every
                        other file of the dir (whatever kinds it holds), written last

Readers (``read_export``, ``load_jax_export``, so ``inference.load`` and every CLI) check
every file against checksums.json first and raise ``DamagedExportError`` naming the first
file that is missing, changed or not listed inside one of its folders: a damaged export is
never used (files added beside its own, e.g. an evaluation's eval_test/, are not read). An export
written before checksums existed loads with one warning naming the missing list.

Both serialised functions take float32 16 kHz waveforms of shape (batch, samples), every
row one whole utterance, already resampled and (if wanted) silence-trimmed, and return
(batch, D) float32 unit d-vectors: ``ge2e_jax.inference.embed_waveforms``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from typing import Callable

import jax
import numpy as np
import orbax.checkpoint as ocp

from ge2e_jax import atomic_file, model

CONFIG_FILE = "config.json"
PARAMS_DIR = "params"
JAX_EXPORT_FILE = "d_vector.jax_export"
SAVED_MODEL_DIR = "saved_model"
FORMAT = "ge2e_jax.export/1"
CHECKSUMS_FILE = "checksums.json"
CHECKSUMS_FORMAT = "ge2e_jax.checksums/1"


class DamagedExportError(ValueError):
  """A file of an export dir differs from (or is missing in) its checksums.json."""


def abstract_encoder_params(config: model.EncoderConfig):
  """ShapeDtypeStructs of the encoder params of ``config``, on the default device."""
  shapes = jax.eval_shape(lambda: model.init_encoder_params(jax.random.key(0), config))
  sharding = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  return jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sharding), shapes)


def is_export_dir(path: str) -> bool:
  return (os.path.isfile(os.path.join(path, CONFIG_FILE))
          and os.path.isdir(os.path.join(path, PARAMS_DIR)))


def write_params(directory: str, config: model.EncoderConfig, encoder_params, metadata: dict):
  """Writes config.json and params/ into ``directory`` (which must exist)."""
  with ocp.StandardCheckpointer() as checkpointer:
    checkpointer.save(os.path.join(os.path.abspath(directory), PARAMS_DIR),
                      {"encoder": encoder_params})
  values = {"model": model.config_to_dict(config), "export": {"format": FORMAT, **metadata}}
  with open(os.path.join(directory, CONFIG_FILE), "w") as f:
    json.dump(values, f, indent=2, sort_keys=True)


def read_config(directory: str) -> dict:
  """config.json of an export dir: {"model": encoder config dict, "export": metadata}."""
  config_path = os.path.join(directory, CONFIG_FILE)
  with open(config_path) as f:
    values = json.load(f)
  if "model" not in values or values.get("export", {}).get("format") != FORMAT:
    raise ValueError(f"{config_path} is not a ge2e_jax export config: expected keys 'model' and "
                     f"'export' with format {FORMAT!r}, got keys {sorted(values)}")
  return values


def sha256(path: str) -> str:
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      digest.update(block)
  return digest.hexdigest()


def _files(directory: str) -> list[str]:
  """Every file under ``directory`` (relative, sorted) but the checksum list itself."""
  found = []
  for root, dirs, files in os.walk(directory):
    dirs.sort()
    found.extend(os.path.relpath(os.path.join(root, name), directory) for name in sorted(files))
  return [rel for rel in found if rel != CHECKSUMS_FILE]


def _entry(directory: str, rel: str) -> dict:
  path = os.path.join(directory, rel)
  return {"sha256": sha256(path), "bytes": os.path.getsize(path)}


def write_checksums(directory: str):
  """Lists every file of ``directory`` with its sha256 in checksums.json (atomically)."""
  _write_list(directory, {rel: _entry(directory, rel) for rel in _files(directory)})


def _write_list(directory: str, files: dict):
  with atomic_file.atomic_write(os.path.join(directory, CHECKSUMS_FILE)) as f:
    json.dump({"format": CHECKSUMS_FORMAT, "files": files}, f, indent=2, sort_keys=True)


def update_checksum(directory: str, rel: str):
  """Records the new content of ``rel`` (e.g. a rewritten model card) in the checksum list
  of an export that has one, after ``verify_checksums`` passed."""
  if os.path.exists(os.path.join(directory, CHECKSUMS_FILE)):
    files = _read_list(directory)
    files[rel] = _entry(directory, rel)
    _write_list(directory, files)


def listed_files(directory: str) -> list[str]:
  """The files (relative paths) the export's checksums.json lists."""
  return sorted(_read_list(directory))


def _read_list(directory: str) -> dict:
  path = os.path.join(directory, CHECKSUMS_FILE)
  try:
    with open(path) as f:
      values = json.load(f)
  except (OSError, ValueError) as err:
    raise DamagedExportError(f"{path}: not a readable checksum list ({err}); export the model "
                             "again") from None
  values = values if isinstance(values, dict) else {}
  files = values.get("files")
  if values.get("format") != CHECKSUMS_FORMAT or not isinstance(files, dict) or not all(
      isinstance(e, dict) and {"sha256", "bytes"} <= set(e) for e in files.values()):
    raise DamagedExportError(f"{path}: expected {{'format': {CHECKSUMS_FORMAT!r}, 'files': "
                             "{path: {'sha256', 'bytes'}}}; export the model again")
  return files


def verify_checksums(directory: str) -> bool:
  """Checks every file of an export dir against its checksums.json; False if it has none.

  Raises DamagedExportError naming the first file that is missing, of another size or
  sha256, or not listed inside one of the export's folders.
  """
  directory = os.fspath(directory)
  list_path = os.path.join(directory, CHECKSUMS_FILE)
  if not os.path.lexists(list_path):
    logging.getLogger(__name__).warning(
        "%s has no %s (written before exports listed their checksums): loaded unverified",
        directory, CHECKSUMS_FILE)
    return False
  files = _read_list(directory)
  again = f"the export is damaged (checked against {list_path}); export the model again"
  for rel, entry in sorted(files.items()):
    path = os.path.join(directory, rel)
    if os.path.isabs(rel) or ".." in rel.split(os.sep):
      raise DamagedExportError(f"{list_path}: lists {rel!r}, outside the export dir; {again}")
    if not os.path.isfile(path):
      raise DamagedExportError(f"{path}: missing; {again}")
    size = os.path.getsize(path)
    if size != entry["bytes"]:
      raise DamagedExportError(f"{path}: {size} bytes, {entry['bytes']} expected; {again}")
    if sha256(path) != entry["sha256"]:
      raise DamagedExportError(f"{path}: content changed (sha256 differs); {again}")
  # Files beside the export's own (an evaluation's eval_test/, a README) are not read by
  # any loader; inside its folders (params/, saved_model/) they would be.
  folders = {rel.split(os.sep)[0] for rel in files if os.sep in rel}
  unlisted = [rel for rel in _files(directory)
              if rel not in files and rel.split(os.sep)[0] in folders]
  if unlisted:
    raise DamagedExportError(f"{os.path.join(directory, unlisted[0])}: not part of the export "
                             f"(not in {list_path}); {again}")
  return True


def read_export(directory: str, verify: bool = True):
  """(EncoderConfig, {"encoder": params}, export metadata) of an export dir, its files
  checked first (``verify_checksums``) unless ``verify`` is False."""
  if verify:
    verify_checksums(directory)
  values = read_config(directory)
  config = model.config_from_dict(values["model"])
  with ocp.StandardCheckpointer() as checkpointer:
    params = checkpointer.restore(os.path.join(os.path.abspath(directory), PARAMS_DIR),
                                  {"encoder": abstract_encoder_params(config)})
  return config, params, values["export"]


def write_jax_export(directory: str, exported: jax.export.Exported):
  with open(os.path.join(directory, JAX_EXPORT_FILE), "wb") as f:
    f.write(exported.serialize())


def load_jax_export(directory: str, verify: bool = True) -> Callable[[np.ndarray], np.ndarray]:
  """``fn(waveform (batch, samples) float32 16 kHz) -> (batch, D)`` from d_vector.jax_export.

  Needs only jax (no ge2e_jax model code, no TensorFlow) on one of the exported platforms.
  The export's files are checked first (``verify_checksums``) unless ``verify`` is False.
  """
  path = os.path.join(directory, JAX_EXPORT_FILE)
  if not os.path.isfile(path):
    raise FileNotFoundError(f"{path} not found: is {directory!r} an export dir written by "
                            "experiments.export?")
  if verify:
    verify_checksums(directory)
  with open(path, "rb") as f:
    exported = jax.export.deserialize(bytearray(f.read()))
  return lambda waveform: np.asarray(exported.call(np.asarray(waveform, np.float32)))
