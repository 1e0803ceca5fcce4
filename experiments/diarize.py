"""Who spoke when in each recording: RTTM lines from a trained encoder's window d-vectors.

  python -m experiments.diarize --model=runs/ti_cpu meeting.wav            # RTTM to stdout
  python -m experiments.diarize --model=runs/ti_cpu --num_speakers=2 --output=out.rttm a.wav b/

``--model`` is a training workdir or an export dir. Folders are walked (sorted) for audio
files. Each recording is cut into windows (the model's window length, a
--hop_frames hop), its window d-vectors are clustered by refined spectral clustering (Wang
et al. 2018; ``ge2e_jax.diarization``, ``ge2e_jax.spectral_clustering``) into --num_speakers
speakers, or as many as the eigen-gap says within [--min_speakers, --max_speakers], and each
speaker's speech becomes RTTM ``SPEAKER`` lines (file id: the file's name without its
extension, or its path where two names clash; speakers spk0, spk1, ... per file in order of
first appearance). One stderr line per file says how many speakers were found. A file that
cannot be read stops the run with one line naming it; --output is written (atomically) only
when every file was diarized, and never over one of the inputs.
"""

import os
import sys

from absl import flags

from experiments import cli, output_paths
from experiments import trial_lists
from ge2e_jax import atomic_file, audio, diarization, inference, progress
from ge2e_jax.diarization import DiarizationOptions
from ge2e_jax.spectral_clustering import ClusteringOptions

_OPTIONS, _CLUSTERING = DiarizationOptions(), ClusteringOptions()
FLAGS = flags.FLAGS
flags.DEFINE_string("model", None, "Training workdir or export dir.")
flags.DEFINE_enum("which", "best", ["best", "latest"], "Checkpoint of a workdir to use.")
flags.DEFINE_string("output", None, "RTTM file to write (default: stdout).")
flags.DEFINE_integer("num_speakers", None, "Speakers per recording (default: eigen-gap).",
                     lower_bound=1)
flags.DEFINE_integer("min_speakers", _CLUSTERING.min_speakers, "Eigen-gap search: fewest.")
flags.DEFINE_integer("max_speakers", _CLUSTERING.max_speakers, "Eigen-gap search: most.")
flags.DEFINE_integer("window_frames", None, "Window length in 10 ms frames (default: model's).")
flags.DEFINE_integer("hop_frames", _OPTIONS.hop_frames, "Window hop in 10 ms frames.")
flags.DEFINE_float("p_percentile", _CLUSTERING.p_percentile,
                   "Row-wise threshold: affinities below this quantile of their row are damped.")
flags.DEFINE_float("blur_sigma", _CLUSTERING.blur_sigma, "Gaussian blur of the affinity (0: off).")
flags.DEFINE_float("vad_top_db", _OPTIONS.vad_top_db,
                   "Energy VAD: 10 ms frames more than this below the loudest are non-speech.")
flags.DEFINE_float("min_pause_s", _OPTIONS.min_pause_s,
                   "Non-speech gaps shorter than this (seconds) count as speech.")
flags.mark_flag_as_required("model")
cli.define_quiet_flag()


def file_ids(paths):
  """RTTM file ids: base names without extension, the full path where base names clash."""
  stems = [os.path.splitext(os.path.basename(p))[0] for p in paths]
  return [s if stems.count(s) == 1 else os.path.splitext(p)[0] for s, p in zip(stems, paths)]


def options_from_flags() -> DiarizationOptions:
  clustering = ClusteringOptions(
      blur_sigma=FLAGS.blur_sigma, p_percentile=FLAGS.p_percentile,
      min_speakers=FLAGS.min_speakers, max_speakers=FLAGS.max_speakers)
  return DiarizationOptions(window_frames=FLAGS.window_frames, hop_frames=FLAGS.hop_frames,
                            vad_top_db=FLAGS.vad_top_db, min_pause_s=FLAGS.min_pause_s,
                            clustering=clustering)


def main(argv):

  with cli.one_line_errors("diarize"):
    paths = [p for arg in argv[1:]
             for p in (trial_lists.list_audio(arg) if os.path.isdir(arg) else [arg])]
    if not paths:
      raise ValueError(f"no audio files in {argv[1:]}; name files or folders after the flags")
    output_paths.check("--output", FLAGS.output, inputs=argv[1:] + paths,
                       models=[FLAGS.model], same_kind=output_paths.is_rttm,
                       kind="an RTTM file")
    options = options_from_flags()
    embedder = diarization.windowed_embedder(inference.load(FLAGS.model, FLAGS.which), options)
    lines, found = [], []
    with progress.Progress("diarize", total=len(paths)) as bar:
      for path, file_id in bar.track(list(zip(paths, file_ids(paths)))):
        wav, sample_rate = audio.read_audio_channels(path)
        segments = diarization.diarize(embedder, wav, sample_rate, FLAGS.num_speakers, options,
                                       name=path)
        lines += diarization.rttm_lines(segments, file_id)
        found.append(f"diarize: {path}: {len({s.speaker for s in segments})} speaker(s), "
                     f"{len(segments)} segment(s)")
    print("\n".join(found), file=sys.stderr, flush=True)
    text = "".join(f"{line}\n" for line in lines)
    if FLAGS.output is None:
      sys.stdout.write(text)
      return
    os.makedirs(os.path.dirname(os.path.abspath(FLAGS.output)), exist_ok=True)
    with atomic_file.atomic_write(FLAGS.output, "w") as f:
      f.write(text)
    print(f"diarize: wrote {len(lines)} RTTM line(s) for {len(paths)} file(s) to "
          f"{FLAGS.output}", file=sys.stderr)


def run():
  """The ``ge2e-diarize`` console script (setup.cfg)."""
  cli.run(main, "diarize")


if __name__ == "__main__":
  run()
