"""The trainer's own config sections, ``config.train`` and ``config.eval``: each field with
its default, check and help (``ge2e_jax.settings``).

``experiments/config_checks.py`` (``RunConfig``) gathers them with the library's sections;
``experiments/evaluate.py`` takes its held-out flags' defaults and checks from ``EvalOptions``.
No jax here: ``evaluate --help`` stays quick.
"""

import dataclasses

from ge2e_jax import settings


@dataclasses.dataclass(frozen=True)
class TrainOptions:
  """``config.train``: how long, how it reports and keeps checkpoints, how it resumes."""
  num_steps: int = settings.setting(100_000, settings.integer(1), "steps to train")
  log_every: int = settings.setting(50, settings.integer(1, note="steps"),
                                    "a progress line (and TensorBoard summaries) every n steps")
  checkpoint_every: int = settings.setting(1000, settings.integer(1, note="steps"),
                                           "a checkpoint every n steps")
  keep_last: int = settings.setting(3, settings.integer(1), "checkpoints kept, newest first")
  keep_best: int = settings.setting(1, settings.integer(0), "checkpoints kept by best EER")
  max_nonfinite_streak: int = settings.setting(
      10, settings.integer(1), "stop after this many non-finite steps in a row")
  encoder_chunks: int = settings.setting(
      1, settings.integer(1, note="that divides each device's utterances"),
      "> 1: the encoder's backward pass over this many chunks of each device's utterances "
      "in turn: activation memory / chunks for one more forward pass (ge2e_jax/train_step.py; "
      "what it saves: BENCHMARKS.md)")
  init_from: str = settings.setting(
      "", settings.text("a training workdir or export dir to fine-tune from, or ''"),
      "fine-tune: a workdir or export dir to start from")
  allow_fresh_start: bool = settings.setting(False, settings.boolean(),
                                             "train from 0 when no checkpoint is usable")
  allow_unverified_checkpoint: bool = settings.setting(
      False, settings.boolean(), "resume from a step without checksums")
  allow_batch_change: bool = settings.setting(
      False, settings.boolean(), "resume with another data.n_speakers/n_utterances/crop")


def enrolment(c, path: str):
  """Some of each speaker's utterances must be left to test once ``enroll`` are enrolled."""
  if c.max_utterances_per_speaker <= c.enroll:
    return (f"config.{path}.max_utterances_per_speaker={c.max_utterances_per_speaker}: "
            f"expected more than config.{path}.enroll={c.enroll} (some must be tested)")
  return None


@dataclasses.dataclass(frozen=True)
class EvalOptions:
  """``config.eval``: held-out evaluation during training (``experiments/held_out.py``)."""
  source: str = settings.setting("ok", settings.text("a source name of config.data.sources"),
                                 "held-out speakers of this source's corpus")
  split: str = settings.setting("test", settings.text("a split name, e.g. 'test'", empty=False),
                                "the split scored; it alone picks the best checkpoint")
  conditions: str = settings.setting(
      "", settings.text("'[?][tfds_name:]split[+channel]' items, comma-separated, or ''"),
      "more held-out conditions scored beside eval.split: '[?][tfds_name:]split[+channel]', "
      "comma-separated; the split is the evaluation corpus's unless another prepared corpus "
      "is named; a channel is an experiments.conditions.apply_condition spec, e.g. "
      "'test_unseen_lang,test+noise_snr5..15,test+reverb'; '?' = scored only where that "
      "corpus is prepared")
  every: int = settings.setting(1000, settings.integer(0, note="steps; 0 = no evaluation"),
                                "an evaluation (and a checkpoint) every n steps")
  enroll: int = settings.setting(3, settings.integer(1), "enrolment utterances per speaker")
  window_frames: int = settings.setting(
      80, settings.Check(lambda v: settings.integer(2).test(v) and v % 2 == 0,
                         "an even integer >= 2"),
      "sliding d-vector windows (160 for TI, Wan et al. 2018 §3.2)")
  max_utterances_per_speaker: int = settings.setting(
      20, settings.integer(2), "utterances read per held-out speaker")

  def __post_init__(self):
    settings.check(self, "eval", enrolment)
