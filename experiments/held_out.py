"""Held-out evaluation (Wan et al. 2018, §3): d-vectors of unseen speakers -> trials -> EER.

Used by the trainer (periodically) and by ``experiments/evaluate.py``, which find the
evaluation corpus of a run config the same way (``eval_corpus``). The evaluation split is
read once; every call embeds it with a ``ge2e_jax.inference.Embedder`` (sliding windows)
and scores all test utterances against all enrolled speakers.
"""

import collections
import dataclasses
from typing import NamedTuple

from absl import logging
import jax
import numpy as np

from data_pipelines import source_specs
from experiments import conditions as channels  # parse_conditions' conditions hold channels
from ge2e_jax import audio, features, inference, metrics, model, scoring

FAR_TARGET = 0.01  # false-accept rate of the second threshold in the summary
EER_CI_LEVEL, EER_CI_BOOTSTRAPS = 0.95, 200  # metrics.eer_interval: resampling speakers


@dataclasses.dataclass
class EvalSet:
  """Utterances of held-out speakers: 16 kHz float32 audio, speaker names, utterance ids."""
  waves: list
  speakers: np.ndarray
  utterances: list
  description: str


def load_eval_set(tfds_name: str, split: str, *, data_dir: str | None, enroll: int,
                  max_utterances_per_speaker: int) -> EvalSet:
  """The split's speakers with > ``enroll`` utterances, first ``max_...`` utterances each."""
  from data_pipelines import corpus  # pylint: disable=g-import-not-at-top  # TensorFlow
  by_speaker = collections.defaultdict(list)
  for example in corpus.iterate(tfds_name, split, data_dir):
    by_speaker[example["speaker"]].append((example["utterance"], example["audio"]))
  waves, speakers, utterances = [], [], []
  for speaker in sorted(by_speaker):
    items = sorted(by_speaker[speaker], key=lambda item: item[0])
    if len(items) <= enroll:
      continue
    for utterance, samples in items[:max_utterances_per_speaker]:
      waves.append(audio.from_int16(samples).reshape(-1))
      speakers.append(speaker)
      utterances.append(utterance)
  n_speakers = len(set(speakers))
  if n_speakers < 2:
    raise ValueError(f"{tfds_name} split {split!r} has {n_speakers} speakers with more than "
                     f"enroll={enroll} utterances; evaluation needs at least 2")
  return EvalSet(waves, np.asarray(speakers), utterances,
                 f"{tfds_name}:{split} ({n_speakers} speakers, {len(waves)} utterances)")


def eval_corpus(config) -> tuple[str, str | None]:
  """(TFDS name, data_dir) of a run config's ``eval.source`` (a ConfigDict or config.json dict)."""
  sources = source_specs.sources(config["data"])
  source = config["eval"]["source"]
  if source not in sources:
    raise ValueError(f"config.eval.source={source!r} is not one of the sources "
                     f"{sorted(sources)} in config.data.sources")
  return sources[source].corpus, config["data"].get("data_dir") or None


def embed(eval_set: EvalSet, embedder: inference.Embedder) -> np.ndarray:
  """(utterances, D) d-vectors; the builders already trimmed silence, so no VAD here."""
  return embedder.embed_prepared(eval_set.waves)


def score(embeddings: np.ndarray, speakers: np.ndarray, enroll: int, seed: int = 0):
  """(summary dict, Trials): EER (fraction), its threshold, its 95 % confidence interval
  (a bootstrap over speakers), minDCF(p=0.01), the threshold at a false-accept rate of
  FAR_TARGET, trial and speaker counts."""
  trials = metrics.speaker_trials(embeddings, speakers, enroll=enroll, seed=seed)
  eer, threshold = metrics.eer(trials.scores, trials.labels)
  at_far = scoring.threshold_at_far(trials.scores, trials.labels, FAR_TARGET)
  summary = {"eer": float(eer), "threshold": float(threshold), "far_target": FAR_TARGET,
             "far_threshold": at_far.threshold,
             "min_dcf": float(metrics.min_dcf(trials.scores, trials.labels, p_target=0.01)),
             "eer_ci95": list(metrics.eer_interval(trials, EER_CI_LEVEL, EER_CI_BOOTSTRAPS, seed)),
             "trials": int(trials.labels.size), "target_trials": int(trials.labels.sum()),
             "speakers": int(trials.speakers.size)}
  return summary, trials


def log_mel_statistics(waves) -> np.ndarray:
  """(utterances, 80): per-utterance mean and standard deviation of the log-mel frames."""
  log_mel = jax.jit(features.log_mel)
  rows = []
  for wave in waves:
    # Zero-padded to whole seconds (few compiled shapes); frames past the audio are dropped.
    padded = np.pad(np.asarray(wave, np.float32), (0, -len(wave) % features.SAMPLE_RATE))
    frames = np.asarray(log_mel(padded), np.float64)[:features.num_frames(len(wave))]
    rows.append(np.concatenate([frames.mean(0), frames.std(0)]))
  stats = np.stack(rows)
  return stats - stats.mean(0)  # Centred, so cosine scores compare shapes, not the mean.


def band_eers(trials: metrics.Trials, speakers: np.ndarray,
              band_of: dict[str, str]) -> list[tuple[str, int, int, float]]:
  """(trials kept, count, target count, EER) for all trials, the same-band ones and each
  band alone; `speakers` labels the embedding rows, `band_of` maps a speaker to its band.
  Same-band trials are those a recording channel cannot decide (experiments/band_eer.py)."""
  test_band = np.array([band_of[s] for s in speakers[trials.test_index]])
  model_band = np.array([band_of[s] for s in trials.speakers])
  pair = (test_band[:, None], model_band[None, :])
  kept = {"all": np.ones((len(test_band), len(model_band)), bool),
          "same band": pair[0] == pair[1]}
  for band in sorted(set(model_band)):
    kept[f"{band} Hz only"] = (pair[0] == band) & (pair[1] == band)
  rows = []
  for what, mask in kept.items():
    scores = trials.scores.reshape(mask.shape)[mask]
    labels = trials.labels.reshape(mask.shape)[mask]
    if labels.all() or not labels.any():  # one speaker in a band: no EER
      continue
    rows.append((what, int(mask.sum()), int(labels.sum()), metrics.eer(scores, labels)[0]))
  return rows


class Condition(NamedTuple):
  corpus: str | None  # None = the evaluation corpus
  split: str
  channel: str        # "" = clean
  optional: bool      # "?" prefix: scored only where its corpus is prepared

  @property
  def name(self) -> str:
    return (f"{self.corpus}:" if self.corpus else "") + self.split + (
        f"+{self.channel}" if self.channel else "")


def parse_conditions(spec: str) -> list[Condition]:
  """``"test_unseen_lang,test+noise_snr5..15,librispeech:test"`` -> [Condition].

  A condition is a split of the evaluation corpus, or of another prepared TFDS corpus when
  prefixed ``tfds_name:`` (corpus None = the evaluation corpus), optionally followed by
  ``+`` and a channel for ``experiments.conditions.apply_condition`` (which may itself join kinds
  with ``+``); channel "" = clean. A leading ``?`` makes it optional: skipped, with a
  warning, where its corpus is not prepared (``?recorded_voices:test`` in the demo).
  """
  conditions = []
  for item in (part.strip() for part in spec.split(",")):
    if not item:
      continue
    optional = item.startswith("?")
    where, _, channel = item.removeprefix("?").partition("+")
    corpus, _, split = where.rpartition(":")
    if not split or (":" in where and not corpus):
      raise ValueError(f"config.eval.conditions: {item!r} names no split or corpus "
                       f"(in {spec!r}); expected [?][tfds_name:]split[+channel]")
    conditions.append(Condition(corpus or None, split, channel, optional))
  return conditions


def with_channel(eval_set: EvalSet, channel: str, seed: int) -> EvalSet:
  """``eval_set`` through ``conditions.apply_condition`` (noise, reverb, ...); as is if ''."""
  if not channel:
    return eval_set
  waves = channels.apply_condition(eval_set.waves, channel, seed, speakers=eval_set.speakers)
  return dataclasses.replace(eval_set, waves=waves,
                             description=f"{eval_set.description} + {channel}")


class HeldOutEvaluator:
  """``evaluator(params) -> summary`` on the config's evaluation source and split.

  ``config.eval.conditions`` adds held-out conditions (other splits, noisy or reverberant
  versions: ``parse_conditions``), each scored alike into ``summary["conditions"]``; the
  main split alone decides the best checkpoint.
  """

  def __init__(self, config, encoder_config: model.EncoderConfig):
    tfds_name, data_dir = eval_corpus(config)
    load = lambda split, corpus=tfds_name: load_eval_set(
        corpus, split, data_dir=data_dir, enroll=config.eval.enroll,
        max_utterances_per_speaker=config.eval.max_utterances_per_speaker)
    self.eval_set = load(config.eval.split)
    self.description = self.eval_set.description
    splits = {(tfds_name, config.eval.split): self.eval_set}
    self.conditions = {}
    for condition in parse_conditions(config.eval.conditions):
      key = (condition.corpus or tfds_name, condition.split)
      if key not in splits:
        try:
          splits[key] = load(condition.split, key[0])
        except FileNotFoundError as err:  # corpus.builder: not prepared
          if not condition.optional:
            raise
          logging.warning("Held-out condition %s skipped: %s", condition.name, err)
          continue
      self.conditions[condition.name] = with_channel(splits[key], condition.channel,
                                                     config.seed)
    self.encoder_config = encoder_config
    self.enroll, self.seed = config.eval.enroll, config.seed
    self.window_frames = config.eval.window_frames

  def __call__(self, params) -> dict:
    embedder = inference.Embedder(self.encoder_config, params["encoder"],
                                  window_frames=self.window_frames,
                                  trim=inference.TrimOptions(enabled=False))
    run = lambda eval_set: score(embed(eval_set, embedder), eval_set.speakers, self.enroll,
                                 self.seed)[0]
    summary = run(self.eval_set)
    if self.conditions:
      summary["conditions"] = {name: dict(run(eval_set), data=eval_set.description)
                               for name, eval_set in self.conditions.items()}
    return summary
