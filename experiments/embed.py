"""Embed audio files into d-vectors with a trained encoder.

  python -m experiments.embed --model=runs/td/export --output=dvectors.npz a.wav speakers/ ...

``--model`` is a training workdir or an export dir (``ge2e_jax.inference.load``). Folders
are walked (sorted) for files of every format the installed libsndfile reads
(``ge2e_jax.audio.AUDIO_EXTENSIONS``: wav, flac, ogg/opus, mp3 with libsndfile >= 1.1,
aiff, caf, ...); files named on the command line are read whatever their extension. Each
file is resampled to 16 kHz mono, silence-trimmed (unless --notrim_silence) and embedded
with sliding windows (``ge2e_jax.inference``).

Output npz: ``paths`` (str, the embedded files in input order) and ``embeddings`` (float32,
one L2-normalised row per path). A file that cannot be embedded (missing, empty,
truncated, not audio, not a regular file, NaN samples, an impossible sample rate, too
short or too quiet to be speech, a non-finite d-vector) or a folder that cannot be listed
stops the run by default: exit status 1, a message naming the path and why, and no output
written. With --skip_unreadable such paths are left out instead, each reported on stderr,
and listed in the npz as ``skipped`` with ``skipped_reasons``. The npz is written to a
temporary file (with the umask's permissions) and renamed, so an existing output is never
replaced by a partial one; an --output that is one of the inputs, lies inside an input
folder or the model, or exists and is not an npz (audio, a workdir file) is refused before
any work (``experiments.output_paths``).

With --windows the npz also holds every window's d-vector, e.g. for diarization or
streaming: ``window_embeddings`` (W, D) float32, ``window_starts`` (W,) seconds from the
start of the file, ``window_file`` (W,) row in ``paths``, and ``window_seconds`` (the window
length); windows hop by --hop_frames (default half a window).
"""

import os
import sys
import zipfile

from absl import flags, logging
import numpy as np

from experiments import cli, output_paths

# audio needs numpy, scipy, soundfile and (for features.SAMPLE_RATE) jax; the model, orbax
# and the checkpoint code come with inference, imported after flag parsing.
from ge2e_jax import atomic_file, audio, inference, progress

FLAGS = flags.FLAGS
flags.DEFINE_string("model", None, "Training workdir or export dir.")
flags.DEFINE_string("output", None, "The .npz file to write.")
flags.DEFINE_enum("which", "best", ["best", "latest"], "Checkpoint of a workdir to use.")
flags.DEFINE_bool("trim_silence", True, "Cut leading and trailing silence (energy VAD).")
flags.DEFINE_float("top_db", 40.0, "VAD: frames more than this below the loudest are silence.")
flags.DEFINE_bool("skip_unreadable", False,
                  "Leave out (and report) files that cannot be embedded instead of failing.")
flags.DEFINE_integer("batch_files", 32, "Files read and embedded together.", lower_bound=1)
flags.DEFINE_bool("windows", False, "Also write each window's d-vector and start time.")
flags.DEFINE_integer("hop_frames", None, "Window hop in 10 ms frames (default: half a window).")
flags.mark_flags_as_required(["model", "output"])
cli.define_quiet_flag()

AUDIO_EXTENSIONS = audio.AUDIO_EXTENSIONS  # every format the installed libsndfile reads


def find_audio(inputs):
  """(files named directly plus the audio files under named folders, {folder: reason}).

  Folders are walked sorted, without following symbolic links to folders; the second
  value holds the folders that could not be listed.
  """
  found, unlistable = [], {}

  def unreadable(error: OSError) -> None:
    unlistable[error.filename] = f"cannot list folder ({error.strerror})"

  for path in inputs:
    if not os.path.isdir(path):
      found.append(path)
      continue
    for root, dirs, files in os.walk(path, onerror=unreadable):
      dirs.sort()
      found.extend(os.path.join(root, f) for f in sorted(files)
                   if f.lower().endswith(AUDIO_EXTENSIONS))
  return found, unlistable


def embed_paths(embedder, paths, skip_unreadable: bool, batch_files: int):
  """(kept paths, (N, D) embeddings, {skipped path: reason}); raises AudioReadError."""
  kept, rows, skipped = [], [], {}

  def skip(err: audio.AudioReadError) -> None:
    if not skip_unreadable:
      raise err
    skipped[err.path] = err.reason
    logging.warning("skipping %s: %s", err.path, err.reason)

  with progress.Progress("embed", total=len(paths)) as bar:
    for first in range(0, len(paths), batch_files):
      wavs, names = [], []
      for path in paths[first:first + batch_files]:
        try:
          wavs.append(embedder.read(path))
          names.append(path)
        except audio.AudioReadError as err:
          skip(err)
      while True:  # Left out one by one: files whose d-vector is not finite.
        try:
          rows.append(embedder.embed_prepared(wavs, names))
          break
        except audio.AudioReadError as err:
          skip(err)
          bad = names.index(err.path)
          del wavs[bad], names[bad]
      kept.extend(names)
      bar.advance(len(paths[first:first + batch_files]))
  return kept, np.concatenate(rows), skipped


def embed_windows(embedder, paths, skip_unreadable: bool):
  """Like ``embed_paths``, plus {window_embeddings, window_starts, window_file} arrays."""
  kept, rows, windows, starts, files, skipped = [], [], [], [], [], {}
  with progress.Progress("embed", total=len(paths)) as bar:
    for path in bar.track(paths):
      try:
        wav, sample_rate = audio.read_audio(path)
        result = embedder.embed_utterance(wav, sample_rate, return_windows=True,
                                          name=os.fspath(path))
      except ValueError as err:  # AudioReadError, or audio that prepare refuses
        reason = getattr(err, "reason", str(err).removeprefix(f"{os.fspath(path)}: "))
        if not skip_unreadable:
          raise audio.AudioReadError(path, reason) from err
        skipped[path] = reason
        logging.warning("skipping %s: %s", path, reason)
        continue
      files.append(np.full(len(result.windows), len(kept)))
      kept.append(path)
      rows.append(result.d_vector)
      windows.append(result.windows)
      starts.append(result.starts)
  if not kept:
    return kept, np.zeros((0, embedder.dim), np.float32), {}, skipped
  return kept, np.stack(rows), {
      "window_embeddings": np.concatenate(windows), "window_starts": np.concatenate(starts),
      "window_file": np.concatenate(files),
      "window_seconds": np.float64(embedder.window_samples / audio.SAMPLE_RATE)}, skipped


def output_problem(output: str):
  """Why ``output`` cannot take the npz (None if it can), checked before any work is done."""
  if os.path.lexists(output) and not os.path.isfile(output):
    kind = "a directory" if os.path.isdir(output) else "not a regular file"
    return f"{output} exists and is {kind}; expected the path of a .npz file"
  folder = os.path.dirname(os.path.abspath(output))
  while not os.path.lexists(folder):  # write_npz creates the missing folders.
    folder = os.path.dirname(folder)
  if not os.path.isdir(folder):
    return f"{folder} is not a folder"
  if not os.access(folder, os.W_OK | os.X_OK):
    return f"folder {folder} is not writable"
  return None


def write_npz(output: str, **arrays):
  """Writes output atomically (``ge2e_jax.atomic_file``), creating its folder if needed."""
  os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
  with atomic_file.atomic_write(output, "wb") as f:
    np.savez(f, **arrays)


def main(argv):
  problem = output_problem(FLAGS.output)
  if problem:
    sys.exit(f"embed: cannot write --output: {problem}")
  with cli.one_line_errors("embed"):
    output_paths.check("--output", FLAGS.output, inputs=argv[1:], models=[FLAGS.model],
                       same_kind=zipfile.is_zipfile, kind="an npz file")
  paths, unlistable = find_audio(argv[1:])
  if unlistable and not FLAGS.skip_unreadable:
    folder, reason = next(iter(unlistable.items()))
    sys.exit(f"embed: {folder}: {reason}\n"
             f"nothing written to {FLAGS.output}; --skip_unreadable leaves such folders out")
  if not paths:
    sys.exit(f"embed: no audio files ({', '.join(AUDIO_EXTENSIONS)}) in {argv[1:]}; "
             "name files or folders after the flags")
  try:
    trim = inference.TrimOptions(enabled=FLAGS.trim_silence, top_db=FLAGS.top_db)
  except ValueError as err:
    sys.exit(f"embed: --top_db: {err}")
  try:
    embedder = inference.load(FLAGS.model, FLAGS.which, trim=trim, hop_frames=FLAGS.hop_frames)
  except cli.user_errors() as err:  # NoUsableCheckpointError and damaged exports included
    sys.exit(f"embed: cannot load --model: {' '.join(str(err).split())}")
  window_arrays = {}
  try:
    if FLAGS.windows:
      kept, embeddings, window_arrays, skipped = embed_windows(embedder, paths,
                                                               FLAGS.skip_unreadable)
    else:
      kept, embeddings, skipped = embed_paths(embedder, paths, FLAGS.skip_unreadable,
                                              FLAGS.batch_files)
  except audio.AudioReadError as err:
    sys.exit(f"embed: cannot embed {err.path}: {err.reason}\n"
             f"nothing written to {FLAGS.output}; --skip_unreadable leaves such files out")
  skipped = {**unlistable, **skipped}
  if skipped:
    print(f"embed: skipped {len(skipped)} unreadable path(s):", file=sys.stderr)
    for path, reason in skipped.items():
      print(f"  {path}: {reason}", file=sys.stderr)
  if not kept:
    sys.exit(f"embed: none of the {len(paths)} files could be embedded; nothing written")
  try:
    write_npz(FLAGS.output, paths=np.array(kept, dtype=str), embeddings=embeddings,
              skipped=np.array(list(skipped), dtype=str),
              skipped_reasons=np.array(list(skipped.values()), dtype=str), **window_arrays)
  except OSError as err:
    sys.exit(f"embed: cannot write --output {FLAGS.output}: {err.strerror or err}")
  print(f"embed: wrote {len(kept)} d-vectors of dimension {embeddings.shape[1]} "
        f"to {FLAGS.output}")


def run():
  """The ``ge2e-embed`` console script (setup.cfg)."""
  cli.run(main, "embed")


if __name__ == "__main__":
  run()
