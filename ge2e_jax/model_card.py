"""``model_card.json``: what a model was trained on, how well it verifies, which threshold to use.

Written into every training workdir (the trainer records each held-out evaluation) and every
export dir (a copy holding the exported step's evaluations); ``experiments.evaluate`` adds
evaluations on the user's own trials, and with ``--calibrate`` makes one the operating point.

  {"format": FORMAT,
   "model":     {"step" (null in a workdir), "window_frames", "hop_frames", "embedding_dim",
                 "encoder"},
   "training":  {"corpus", "weights", "data_dir", "eval_source", "eval_split", "loss", "num_steps",
                 "config"},
   "versions":  {package: version},
   "evaluations": [{"step", "condition", "data", "score_norm", "cohort", "eer",
                    "eer_threshold", "min_dcf", "p_target", "far_target", "far_threshold",
                    "trials", "target_trials", "calibration", "operating_point",
                    "calibrated_on", "written"}],
   "files":     {"onnx": what d_vector.onnx takes and gives} (exports with --onnx only),
   "note": what a threshold does and does not carry over to}

``operating_point(card, step, score_norm)`` is the evaluation ``verify`` takes its threshold
(and llr calibration) from: per step and score normalisation at most one is marked.
"""

from __future__ import annotations

import copy
import json
import os
import platform
import time
from importlib import metadata

from ge2e_jax import atomic_file

FILE = "model_card.json"
FORMAT = "ge2e_jax.model_card/1"
PACKAGES = ("ge2e_jax", "jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "numpy", "scipy",
            "tensorflow", "tensorflow-cpu", "tensorflow-datasets", "ml_collections")
NOTE = ("A threshold holds for audio like the trials it was measured on (language, channel, "
        "utterance length, number of enrolment utterances, score normalisation); measure one "
        "on your own development trials with `python -m experiments.evaluate --model=<this> "
        "--trials=<list> --audio_root=<dir> --calibrate` (or --speaker_dir=<dir>).")
HELD_OUT = "held-out speakers (the trainer's periodic evaluation)"


def read(directory: str | os.PathLike) -> dict | None:
  """The card in ``directory``, or None when it has none."""
  path = os.path.join(os.fspath(directory), FILE)
  if not os.path.exists(path):
    return None
  try:
    with open(path) as f:
      card = json.load(f)
  except (OSError, ValueError) as err:
    raise ValueError(f"{path}: not a readable model card ({err})") from err
  if not isinstance(card, dict) or card.get("format") != FORMAT:
    raise ValueError(f"{path}: expected a JSON object with format {FORMAT!r}")
  return card


def write(directory: str | os.PathLike, card: dict):
  """Writes atomically (temporary file + rename): a reader never sees half a card."""
  with atomic_file.atomic_write(os.path.join(directory, FILE)) as f:
    json.dump(card, f, indent=2, sort_keys=True)


def new(step: int | None = None, window_frames: int | None = None,
        encoder: dict | None = None, training: dict | None = None) -> dict:
  model = {"step": step, "window_frames": window_frames,
           "hop_frames": None if window_frames is None else window_frames // 2,
           "embedding_dim": model_dim(encoder), "encoder": encoder}
  return {"format": FORMAT, "model": model, "training": training, "versions": package_versions(),
          "evaluations": [], "note": NOTE}


def model_dim(encoder: dict | None) -> int | None:
  """The d-vector size of an encoder config dict (``model.embedding_dim``, without jax)."""
  encoder = encoder or {}
  return encoder.get("head") or encoder.get("projection") or encoder.get("cells")


def package_versions() -> dict:
  versions = {"python": platform.python_version()}
  for package in PACKAGES:
    try:
      versions[package] = metadata.version(package)
    except metadata.PackageNotFoundError:
      pass
  return versions


def training_section(config: dict) -> dict:
  """The training corpus and settings of a trainer config (``config.to_dict()``)."""
  data, evaluation = config.get("data", {}), config.get("eval", {})
  return {"corpus": data.get("sources"), "weights": data.get("weights") or None,
          "data_dir": data.get("data_dir") or None, "eval_source": evaluation.get("source"),
          "eval_split": evaluation.get("split"), "loss": config.get("loss"),
          "num_steps": config.get("train", {}).get("num_steps"), "config": config}


def evaluation(result: dict, *, step: int | None, condition: str, data: str,
               score_norm: str = "none", cohort: dict | None = None,
               calibration: dict | None = None) -> dict:
  """A card evaluation from a ``scoring.summary`` (or trainer eval) result dict."""
  threshold = result.get("eer_threshold", result.get("threshold"))
  entry = {"step": step, "condition": condition, "data": data, "score_norm": score_norm,
           "cohort": cohort, "eer": result["eer"], "eer_ci95": result.get("eer_ci95"),
           "eer_threshold": threshold,
           "min_dcf": result["min_dcf"], "p_target": result.get("p_target", 0.01),
           "far_target": result.get("far_target"), "far_threshold": result.get("far_threshold"),
           "trials": result["trials"], "target_trials": result["target_trials"],
           "calibration": calibration, "operating_point": False,
           "written": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
  far = ("" if entry["far_threshold"] is None else
         f" and the threshold at a false-accept rate of {entry['far_target']:g} "
         f"({entry['far_threshold']:.4f})")
  fitted = ("; the logistic calibration (llr = a * score + b) was fitted on the same trials"
            if calibration else "")
  cohort_text = (f", AS-norm with cohort {cohort.get('source')} (top_k {cohort.get('top_k')})"
                 if cohort else "")
  entry["calibrated_on"] = (
      f"the EER threshold ({threshold:.4f}){far} {'were' if far else 'was'} measured on {data}: "
      f"{condition}, "
      f"{result['trials']} trials ({result['target_trials']} target), {score_norm} scores"
      f"{cohort_text}, step {step}{fitted}")
  return entry


def add_evaluation(card: dict, entry: dict, operating_point: bool) -> dict:
  """Adds ``entry`` (replacing one of the same step, condition, data and score_norm).

  ``operating_point`` marks it as the one ``verify`` uses for its step and score_norm.
  """
  key = lambda e: (e["step"], e["condition"], e["data"], e["score_norm"])
  kept = [e for e in card.get("evaluations", []) if key(e) != key(entry)]
  if operating_point:
    for other in kept:
      if (other["step"], other["score_norm"]) == (entry["step"], entry["score_norm"]):
        other["operating_point"] = False
  entry = dict(entry, operating_point=operating_point)
  card["evaluations"] = kept + [entry]
  return card


def operating_point(card: dict | None, step: int | None, score_norm: str = "none") -> dict | None:
  """The evaluation marked for ``step`` and ``score_norm``, if the card has one."""
  for entry in reversed((card or {}).get("evaluations", [])):
    if entry["operating_point"] and (entry["step"], entry["score_norm"]) == (step, score_norm):
      return entry
  return None


def record_training_eval(workdir: str, config: dict, step: int, result: dict, data: str):
  """The trainer's hook: adds a held-out evaluation of ``step`` as that step's operating point."""
  card = read(workdir) or new()
  card.update(training=training_section(config), versions=package_versions())
  window_frames = config.get("eval", {}).get("window_frames")
  card["model"] = new(None, window_frames, config.get("model"))["model"]  # steps: evaluations
  entry = evaluation(result, step=step, condition=HELD_OUT, data=data)
  card = add_evaluation(card, entry, operating_point=True)
  for name, other in result.get("conditions", {}).items():  # config eval.conditions
    card = add_evaluation(card, evaluation(other, step=step, condition=f"{HELD_OUT}: {name}",
                                           data=other["data"]), operating_point=False)
  write(workdir, card)


def for_step(card: dict | None, step: int | None, window_frames: int, encoder: dict) -> dict:
  """A copy of ``card`` holding only ``step``'s evaluations (an export of that step)."""
  card = copy.deepcopy(card) if card is not None else new()
  card["model"] = new(step, window_frames, encoder)["model"]
  card["evaluations"] = [e for e in card.get("evaluations", []) if e["step"] == step]
  card["versions"] = card.get("versions") or package_versions()
  if not card["evaluations"]:
    card["note"] = (f"No evaluation of step {step} is recorded, so there is no threshold. "
                    + NOTE)
  return card
