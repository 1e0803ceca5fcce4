"""Fine-tuning: start a run from another model's params (``config.train.init_from``).

``init_from`` is a training workdir (its best checkpoint: lowest eval EER, else the latest)
or an export dir (``experiments/export.py``). The new run takes from it
  encoder              always; its shapes must match this run's ``config.model``
  similarity w, b      when the source has them (a workdir does, an export does not)
  classifier           the softmax baseline's head, only when the source has one of the
                       same shape (same number of training speakers)
and initialises the rest as a fresh run would. The optimiser state and step counter start
fresh. Every encoder field that shapes what the params compute (architecture, frontend,
volume, windows: all but ``forget_bias``, an initialiser, and ``scan_unroll``, a speed
setting) must equal the source's, as must ``eval.window_frames``; a difference is one line
naming each field and the source's value to set. The trainer asks for this only when the run's own workdir has no checkpoint: a
resumed fine-tune restores its own latest step and never reads ``init_from`` again.
"""

from __future__ import annotations

import os

import jax
import numpy as np
from absl import logging

from ge2e_jax import checkpoint, export_io, model


FREE_FIELDS = ("forget_bias", "scan_unroll")


def read_source(path: str) -> tuple[dict, str]:
  """(params pytree, description) of a workdir's best checkpoint or of an export dir."""
  if export_io.is_export_dir(path):
    _, params, _ = export_io.read_export(path)
    return params, f"export {path}"
  if os.path.isdir(os.path.join(path, checkpoint.CHECKPOINT_DIR)):
    step, params = checkpoint.restore_params(path, "best")
    return params, f"workdir {path} (step {step})"
  raise FileNotFoundError(
      f"config.train.init_from={path!r}: expected a training workdir (config.json + "
      f"checkpoints/) or an export dir (config.json + params/, written by experiments.export)")


def check_source_config(path: str, run_model: dict, window_frames: int):
  """Raises ValueError naming every ``config.model`` field (and ``eval.window_frames``) that
  differs from the source's, with the value to set."""
  if export_io.is_export_dir(path):
    values = export_io.read_config(path)
    source_model, source_window = values["model"], values["export"].get("window_frames")
  elif os.path.isfile(os.path.join(path, checkpoint.CONFIG_FILE)):
    values = checkpoint.read_config(path)
    source_model = values.get("model", {})
    source_window = values.get("eval", {}).get("window_frames")
  else:
    read_source(path)  # raises the one-line error for a path that is neither
    return
  source = model.config_to_dict(model.config_from_dict(source_model))
  run = model.config_to_dict(model.config_from_dict(dict(run_model)))
  differ = [f"--config.model.{key}={source[key]!r} (not {run[key]!r})" for key in source
            if key not in FREE_FIELDS and source[key] != run[key]]
  if source_window is not None and source_window != window_frames:
    differ.append(f"--config.eval.window_frames={source_window} (not {window_frames})")
  if differ:
    raise ValueError(f"config.train.init_from={path}: this run's encoder must compute what the "
                     f"source's does: set {', '.join(differ)}")




def merge(fresh: dict, source: dict, name: str) -> tuple[dict, list[str]]:
  """``fresh`` with the parts of ``source`` that fit replaced; (params, what was done).

  Raises ValueError naming ``name`` when the encoders differ in structure or shape.
  """
  if "encoder" not in source:
    raise ValueError(f"{name} holds no encoder params (keys {sorted(source)})")
  if _shapes(source["encoder"]) != _shapes(fresh["encoder"]):
    raise ValueError(f"{name}: its encoder does not fit config.model; source shapes "
                     f"{_shapes(source['encoder'])}, this run's {_shapes(fresh['encoder'])}")
  params, notes = dict(fresh), []
  for part in sorted(fresh):
    if part not in source:
      notes.append(f"{part} fresh (not in the source)")
    elif _shapes(source[part]) != _shapes(fresh[part]):
      notes.append(f"{part} fresh (source shapes {_shapes(source[part])}, "
                   f"this run's {_shapes(fresh[part])})")
    else:  # cast to this run's dtypes
      params[part] = jax.tree.map(lambda s, f: np.asarray(s, np.asarray(f).dtype),
                                  source[part], fresh[part])
      notes.append(part)
  return params, notes


def initial_params(path: str, fresh: dict) -> dict:
  """This run's first params: ``fresh`` with what fits from ``path`` (see module doc)."""
  source, name = read_source(path)
  params, notes = merge(fresh, source, name)
  logging.info("fine-tuning from %s: %s; fresh optimiser state, step 0", name, ", ".join(notes))
  return params


def _shapes(tree):
  return jax.tree.map(lambda x: tuple(np.shape(x)), tree)
