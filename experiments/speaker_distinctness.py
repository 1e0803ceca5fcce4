"""How distinct a corpus's speakers are: EER of untrained log-mel statistics, and of models.

  python -m experiments.speaker_distinctness --data_dir=runs/tfds \
      --condition=synthetic_voices/td_ok_computer_stock:test \
      --condition=synthetic_voices/td_ok_computer:test [--model=runs/a --model=runs/b]

Each condition is `tfds_name:split`. Without training, every utterance becomes the mean and
standard deviation of its 40 log-mel channels (`ge2e_jax.features`), nothing learnt from any
corpus: near-duplicate voices give near-identical statistics, so a higher EER means less
distinct speakers. Each --model (a training workdir or export) adds its d-vector EER on the
same conditions. Trials and EER are those of the held-out evaluation
(experiments/held_out.py: enrolment centroids, every test utterance against every speaker).
"""

from absl import app, flags

from experiments import cli, held_out
from ge2e_jax import inference

FLAGS = flags.FLAGS
flags.DEFINE_multi_string("condition", None, "tfds_name:split of held-out speakers.")
flags.DEFINE_multi_string("model", [], "Training workdirs or export dirs to score as well.")
flags.DEFINE_string("data_dir", None, "TFDS data_dir of the conditions.")
flags.DEFINE_integer("num_enroll", 3, "Enrolment utterances per speaker (a count).")
flags.DEFINE_integer("max_utterances_per_speaker", 20, "Cap on utterances read per speaker.")
flags.DEFINE_integer("seed", 0, "Seed of the enrolment choice.")
flags.mark_flag_as_required("condition")


def main(argv):
  del argv
  # The builders already trimmed silence (as in experiments/held_out.py).
  embedders = {path: inference.load(path, trim=inference.TrimOptions(enabled=False))
               for path in FLAGS.model}
  for condition in FLAGS.condition:
    name, _, split = condition.rpartition(":")
    eval_set = held_out.load_eval_set(
        name, split, data_dir=FLAGS.data_dir, enroll=FLAGS.num_enroll,
        max_utterances_per_speaker=FLAGS.max_utterances_per_speaker)
    scored = {"log-mel statistics (untrained)": held_out.log_mel_statistics(eval_set.waves)}
    for path, embedder in embedders.items():
      scored[path] = embedder.embed_prepared(eval_set.waves)
    for what, embeddings in scored.items():
      summary, _ = held_out.score(embeddings, eval_set.speakers, FLAGS.num_enroll, FLAGS.seed)
      print(f"EER {100 * summary['eer']:6.2f}%  {eval_set.description}  [{what}]", flush=True)


if __name__ == "__main__":
  cli.run(main, "speaker_distinctness", renamed={"enroll": "num_enroll"})
