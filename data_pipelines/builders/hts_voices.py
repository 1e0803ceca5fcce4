"""hts_voices: a multi-speaker corpus from a second synthesis engine, Open JTalk's HTS voice.

Every other synthetic corpus here is espeak-ng (a formant synthesiser, or MBROLA's diphones
through it). An encoder trained only on it meets other engines as a new channel; this corpus
is HMM-based statistical parametric speech (open_jtalk.py), the family of many deployed
TTS voices, to train on beside it. Debian ships one HTS voice for Open JTalk (a male
Japanese speaker, CC-BY-3.0), so a speaker here is that voice under seeded settings of its
own (`open_jtalk.Settings`): the all-pass constant (the frequency scale of the spectral
envelope: a longer or shorter vocal tract), F0 shifted by half-tones, speech rate, the
global-variance weights of spectrum and intonation, postfilter and voicing threshold; each
utterance jitters F0 and rate a little. Speakers are procedural variations of one recorded
voice, as synthetic_voices' are of espeak-ng's: they teach the engine's sound and the
variations, not new real voices.

Splits (speaker-disjoint): `train` (`num_train_speakers`), `test` (the next
`num_test_speakers`). Text: random Japanese sentences (sentences.random_japanese_sentence).
The same config gives the same bytes on every run; the build report holds every speaker's
settings and the Debian package versions.

Build:  make hts-voices
or      python -m data_pipelines.builders.tfds_build data_pipelines/builders/hts_voices.py \
            --config=ti --data_dir=runs/tfds
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow_datasets as tfds

from data_pipelines.builders import common
from data_pipelines.builders import open_jtalk
from data_pipelines.builders import sentences
from ge2e_jax import audio


@dataclasses.dataclass(eq=False)
class HtsVoicesConfig(tfds.core.BuilderConfig):
  """Corpus size and the ranges speakers' settings are drawn from (uniformly)."""
  num_train_speakers: int = 120
  num_test_speakers: int = 30
  utterances_per_speaker: int = 16
  seed: int = 0
  all_pass: tuple[float, float] = (0.50, 0.60)   # the voice's own: 0.55 (48 kHz)
  half_tone: tuple[float, float] = (-4.0, 10.0)  # the voice's F0 is a man's
  rate: tuple[float, float] = (0.85, 1.2)
  gv_spectrum: tuple[float, float] = (0.8, 1.2)
  gv_f0: tuple[float, float] = (0.6, 1.6)
  postfilter: tuple[float, float] = (0.0, 0.3)
  voicing: tuple[float, float] = (0.4, 0.6)
  half_tone_jitter: float = 0.5                  # per utterance, +-
  rate_jitter: float = 0.05                      # per utterance, +- (relative)
  trim_top_db: float = 40.0
  num_workers: int = 2


@dataclasses.dataclass(frozen=True)
class Speaker:
  """One speaker: its id, split and the voice settings all its utterances start from."""
  id: str
  split: str
  settings: open_jtalk.Settings


def speakers(config: HtsVoicesConfig) -> list[Speaker]:
  """The seeded speaker list, train first: a speaker depends on (seed, its index) only."""
  fields = ("all_pass", "half_tone", "rate", "gv_spectrum", "gv_f0", "postfilter", "voicing")
  count = config.num_train_speakers + config.num_test_speakers
  out = []
  for i in range(count):
    rng = np.random.default_rng([config.seed, i])
    drawn = {f: float(rng.uniform(*getattr(config, f))) for f in fields}
    out.append(Speaker(f"hts{i:05d}", "train" if i < config.num_train_speakers else "test",
                       open_jtalk.Settings(**drawn)))
  return out


def utterance_plan(config: HtsVoicesConfig, speaker_index: int, speaker: Speaker,
                   utt_index: int) -> tuple[str, open_jtalk.Settings]:
  """(text, settings) of one utterance, seeded by the speaker and utterance indices."""
  rng = np.random.default_rng([config.seed, speaker_index, utt_index, 1])
  base = speaker.settings
  settings = dataclasses.replace(
      base, half_tone=base.half_tone + rng.uniform(-1, 1) * config.half_tone_jitter,
      rate=base.rate * (1 + rng.uniform(-1, 1) * config.rate_jitter))
  return sentences.random_japanese_sentence(rng), settings


class HtsVoices(common.ReportingBuilder, tfds.core.GeneratorBasedBuilder):
  """Multi-speaker Open JTalk (HTS) speech with the common ge2e_jax features."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "First release."}
  BUILDER_CONFIGS = [
      HtsVoicesConfig(name="ti", description="Random Japanese sentences, 120 + 30 speakers."),
  ]

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        features=common.features(), homepage="https://open-jtalk.sourceforge.net/",
        description=__doc__.split("\n")[0])

  def _split_generators(self, dl_manager):
    del dl_manager  # Nothing to download: the packages are fetched by `make hts-voices`.
    config = self.builder_config
    self._install = open_jtalk.install()
    all_speakers = speakers(config)
    self.report.extra["open_jtalk"] = dataclasses.asdict(self._install)
    self.report.extra["packages"] = common.package_versions(self._install.root)
    self.report.extra["speakers"] = [dataclasses.asdict(s) for s in all_speakers]
    return {split: self._generate_examples(split, list(enumerate(all_speakers)))
            for split in common.SPLITS}

  def _generate_examples(self, split, indexed_speakers):
    config = self.builder_config
    trim = audio.TrimOptions(enabled=True, top_db=config.trim_top_db)
    jobs = [(i, spk, u) for i, spk in indexed_speakers if spk.split == split
            for u in range(config.utterances_per_speaker)]

    def run(job):
      i, spk, u = job
      text, settings = utterance_plan(config, i, spk, u)
      try:
        wav, sr = open_jtalk.synthesize(self._install, text, settings)
        return job, text, settings, common.prepare(wav, sr, trim), None
      except (open_jtalk.OpenJTalkError, ValueError) as e:  # AudioReadError is a ValueError.
        return job, text, settings, None, str(e)

    yield from common.reported_examples(self.report, split, (
        (spk.id, f"{spk.id}/{u:04d}", "open_jtalk " + " ".join(settings.flags()), text,
         prepared, error)
        for (_, spk, u), text, settings, prepared, error in common.ordered_map(
            run, jobs, config.num_workers)))
