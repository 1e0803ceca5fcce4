"""EER of recorded_voices within one band limit: the trials its channel cannot decide.

  python -m experiments.band_eer --data_dir=runs/tfds [--split=test_clips] [--model=runs/a ...] \
      [--which=latest]

recorded_voices holds telephone prompts (recorded at 8 kHz: nothing above 4 kHz) and
wide-band voices, so a trial of a telephone utterance against a wide-band speaker is decided
by the channel alone. This scores the split as the held-out evaluation does
(experiments/held_out.py: enrolment centroids, every test utterance against every speaker)
and splits the trials by the band limits, in its build report, of the tested utterance's
speaker and of the model's speaker: "same band" keeps the trials a band cue cannot decide.
Untrained log-mel statistics first (speaker_distinctness's baseline), then every --model.
"""

from absl import flags

from experiments import cli, held_out, run_settings
from ge2e_jax import inference, metrics

CORPUS = "recorded_voices"
_EVAL = run_settings.EvalOptions()
FLAGS = flags.FLAGS
flags.DEFINE_string("data_dir", None, "TFDS data_dir where recorded_voices is built.")
flags.DEFINE_string("split", "test", "The split scored (test, test_clips or train).")
flags.DEFINE_multi_string("model", [], "Training workdirs or export dirs to score as well.")
flags.DEFINE_enum("which", "best", ["best", "latest"],
                  "Workdir checkpoint scored (latest where the best was chosen on this split).")
flags.DEFINE_integer("num_enroll", _EVAL.enroll, "Enrolment utterances per speaker (a count).")
flags.DEFINE_integer("max_utterances_per_speaker", _EVAL.max_utterances_per_speaker,
                     "Cap on utterances read per speaker.")
flags.DEFINE_integer("seed", 0, "Seed of the enrolment choice.")


def bands(data_dir: str | None) -> dict[str, str]:
  """{speaker: band limit (Hz, a string)} from recorded_voices' build report."""
  from data_pipelines import corpus  # pylint: disable=g-import-not-at-top  # TensorFlow
  from data_pipelines.builders import common, recorded_voices  # pylint: disable=g-import-not-at-top
  return recorded_voices.band_of(common.read_report(corpus.builder(CORPUS, data_dir)))


def main(argv):
  del argv
  with cli.one_line_errors("band_eer"):
    # The builders already trimmed silence (as in experiments/held_out.py).
    embedders = {path: inference.load(path, FLAGS.which,
                                      trim=inference.TrimOptions(enabled=False))
                 for path in FLAGS.model}
    band_of = bands(FLAGS.data_dir)
    eval_set = held_out.load_eval_set(
        CORPUS, FLAGS.split, data_dir=FLAGS.data_dir, enroll=FLAGS.num_enroll,
        max_utterances_per_speaker=FLAGS.max_utterances_per_speaker)
  scored = {"log-mel statistics (untrained)": held_out.log_mel_statistics(eval_set.waves)}
  for path, embedder in embedders.items():
    scored[path] = embedder.embed_prepared(eval_set.waves)
  for what, embeddings in scored.items():
    trials = metrics.speaker_trials(embeddings, eval_set.speakers, FLAGS.num_enroll, FLAGS.seed)
    for kept, count, target, eer in held_out.band_eers(trials, eval_set.speakers, band_of):
      print(f"EER {100 * eer:6.2f}%  {kept:14s} {count:6d} trials ({target} target)  "
            f"{eval_set.description}  [{what}]", flush=True)


if __name__ == "__main__":
  cli.run(main, "band_eer", renamed={"enroll": "num_enroll"})
