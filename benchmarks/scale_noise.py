"""scale_noise: noise-like corpora of 0.1 to 50 hours for benchmarks/scale.py, generated fast.

Utterances are slices of one seeded noise bank (fine for I/O and memory, not for training a
good model); >= 64 speakers x 16 utterances, ~7.5 s each (shorter when 64 speakers must share
a small corpus), lengths uniform in [0.5, 1.5] x the mean. Features as every corpus
(`data_pipelines.builders.common.features`), one `train` split.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow_datasets as tfds

from data_pipelines.builders import common

MIN_SPEAKERS = 64
UTTERANCES_PER_SPEAKER = 16
MEAN_SECONDS = 7.5
HOURS = (0.1, 1, 10, 50)  # the corpus sizes: builder configs h0.1, h1, h10, h50


def corpus_shape(hours: float) -> tuple[int, float]:
  """(speakers, mean utterance seconds) of a corpus of `hours`."""
  speakers = max(MIN_SPEAKERS, round(hours * 3600 / (UTTERANCES_PER_SPEAKER * MEAN_SECONDS)))
  return speakers, hours * 3600 / (speakers * UTTERANCES_PER_SPEAKER)


@dataclasses.dataclass(eq=False)
class ScaleNoiseConfig(tfds.core.BuilderConfig):
  hours: float = 1.0  # total audio


class ScaleNoise(tfds.core.GeneratorBasedBuilder):
  """Noise-like utterances (slices of one seeded noise bank) with the common features."""

  VERSION = tfds.core.Version("1.0.0")
  BUILDER_CONFIGS = [ScaleNoiseConfig(name=f"h{h:g}", hours=h) for h in HOURS]

  def _info(self):
    return self.dataset_info_from_configs(features=common.features())

  def _split_generators(self, dl_manager):
    del dl_manager
    return {"train": self._generate_examples()}

  def _generate_examples(self):
    speakers, mean = corpus_shape(self.builder_config.hours)
    rng = np.random.default_rng(0)
    bank = rng.integers(-8000, 8000, size=2 * 60 * common.SAMPLE_RATE, dtype=np.int16)
    lengths = rng.integers(int(0.5 * mean * common.SAMPLE_RATE),
                           int(1.5 * mean * common.SAMPLE_RATE),
                           size=(speakers, UTTERANCES_PER_SPEAKER))
    starts = rng.integers(0, 60 * common.SAMPLE_RATE, size=lengths.shape)
    for s in range(speakers):
      for u in range(UTTERANCES_PER_SPEAKER):
        n, at = int(lengths[s, u]), int(starts[s, u])
        audio = bank[at:at + n]  # n <= 1.5 x 7.5 s, so it ends within the 2-minute bank
        name = f"spk{s:05d}/{u:03d}"
        yield name, {"audio": audio, "speaker": f"spk{s:05d}", "utterance": name, "text": ""}
