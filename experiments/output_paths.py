"""Outputs never replace what the user gave: every CLI checks its output paths before any work.

  output_paths.check("--output", FLAGS.output, inputs=argv[1:], models=[FLAGS.model],
                     same_kind=zipfile.is_zipfile, kind="an npz file")

``check`` raises ValueError (one line naming the flag, for ``cli.one_line_errors``) when the
output
  - is one of the inputs, or is a folder that holds one;
  - lies inside an input folder (read for audio: the output would replace a file there or be
    read as input next time);
  - is, holds or lies inside a model's own files (a workdir's config.json and checkpoints/,
    an export's params/ and every other file its checksums.json lists);
  - exists and is audio, or is a file ``same_kind`` does not take for the tool's own output.
"""

import os

import soundfile as sf

from ge2e_jax import audio, export_io

# A training workdir's and an export's own entries (ge2e_jax.checkpoint, ge2e_jax.export_io,
# ge2e_jax.model_card); an export's checksums.json adds whatever else it lists.
MODEL_ENTRIES = ("config.json", "checkpoints", "params", "saved_model", "model_card.json",
                 "checksums.json")


def _within(path: str, folder: str) -> bool:
  """Whether real path ``path`` is ``folder`` or lies inside it."""
  return os.path.commonpath([path, folder]) == folder


def _model_entries(model: str) -> set[str]:
  entries = set(MODEL_ENTRIES)
  try:
    if os.path.exists(os.path.join(model, export_io.CHECKSUMS_FILE)):
      entries |= {rel.split(os.sep)[0] for rel in export_io.listed_files(model)}
  except ValueError:  # a damaged list: the loader names it
    pass
  return entries


def _is_audio(path: str) -> bool:
  if path.lower().endswith(audio.AUDIO_EXTENSIONS):
    return True
  try:
    sf.info(path)
    return True
  except Exception:  # pylint: disable=broad-except  # any failure: not audio libsndfile reads
    return False


def check(flag: str, output: str | None, inputs=(), models=(), same_kind=None,
          kind: str = "the tool's output"):
  """Raises ValueError when writing ``output`` could replace or change an input (above)."""
  if not output:
    return
  real = os.path.realpath(output)
  again = "choose another path (nothing was written)"
  for given in filter(None, inputs):
    given_real = os.path.realpath(given)
    if real == given_real:
      raise ValueError(f"{flag}={output} is also an input ({given}); {again}")
    if _within(given_real, real):
      raise ValueError(f"{flag}={output} holds the input {given}; {again}")
    if os.path.isdir(given_real) and _within(real, given_real):
      raise ValueError(f"{flag}={output} lies inside the input folder {given}; {again}")
  for model in filter(None, models):
    for entry in sorted(_model_entries(model)):
      protected = os.path.realpath(os.path.join(model, entry))
      if _within(real, protected) or _within(protected, real):
        raise ValueError(f"{flag}={output} is, holds or lies inside {protected}, part of the "
                         f"model {model}; {again}")
  if os.path.isfile(real):
    if _is_audio(real):
      raise ValueError(f"{flag}={output} exists and is audio; {again}")
    if same_kind is not None and not same_kind(real):
      raise ValueError(f"{flag}={output} exists and is not {kind}, so it is not replaced; "
                       f"{again}")


def is_rttm(path: str) -> bool:
  """Whether ``path`` is a text file of RTTM lines (or empty)."""
  try:
    with open(path) as f:
      return all(not line.strip() or line.startswith("SPEAKER ") for line in f)
  except (OSError, UnicodeDecodeError):
    return False
