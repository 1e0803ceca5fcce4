"""ti_cpu on real and synthetic speech: MultiReader (Wan et al. 2018, §2.3) of the recorded
human voices (recorded_voices:train, 16 speakers), the procedural espeak-ng voices
(synthetic_voices/ti_960:train, 960 speakers) and Open JTalk's HTS voices
(hts_voices/ti:train, 120 speakers): people, a formant synthesiser and an HMM one.

Every MultiReader source shares the batch N x M, and the recorded corpus has only 16
training speakers, so each step carries one 8 x 6 batch of each source (144 utterances).
1200 steps (the schedule decayed over them) keep training within ti_cpu's half hour on 2
CPU cores. Half the utterances are cut to a word-long stretch ending the crop after
silence (``augment.short``, ``fill="pad"``): most clips people record are shorter than the
160-frame window. Noise at 5-20 dB on 65 % of the utterances instead of td.py's 0-20 dB on
half: an engine outside training holds up better in noise. Why these sources, weights,
stretches and noise: RESULTS.md, "Recorded human voices: the real + synthetic sweep"
(MultiReader against pooling; the recorded weight), "960 synthetic training speakers", "A
second synthesis engine in training", "`make ti-cpu`: three corpora in the half hour"
(against the two-corpus config before it), "Word-long stretches after silence" and "Noise
on more utterances, none below 5 dB". experiments/ablate_real.py sweeps the recorded
corpus's weight on its own base, `ti_cpu_real.py:sweep` (recorded voices and `ti`'s 120
espeak-ng speakers, 1600 steps: the config the sweep's arms were run on).
Held-out: ti_cpu's conditions (synthetic unseen families, real speakers clean, noisy,
reverberant and as single clips; MBROLA where built) and the HTS voices' test speakers.

  make ti-cpu
"""

from data_pipelines import source_specs
from experiments.configs import ti_cpu

RECORDED_WEIGHT = 0.25  # MultiReader weight of recorded_voices beside the synthetic 1.0
HTS_WEIGHT = 0.5  # ... and of hts_voices
SHORT_PROB = 0.5  # fraction of utterances cut to a stretch after silence
NOISE_PROB, NOISE_SNR_DB = 0.65, (5.0, 20.0)  # fraction of utterances in noise, its SNRs


def get_config(base: str = ""):
  """``base`` "sweep": the real + synthetic sweep's base config (see above)."""
  if base not in ("", "sweep"):
    raise ValueError(f"ti_cpu_real.py:{base}: expected no suffix or ':sweep'")
  c = ti_cpu.get_config()
  c.data.sources = {"ti": source_specs.source("synthetic_voices/ti", 1.0),
                    "real": source_specs.source("recorded_voices", RECORDED_WEIGHT)}
  c.data.mode = "stacked"
  c.data.n_speakers = 8
  c.train.num_steps = c.optimizer.decay_steps = 1600
  c.train.checkpoint_every = c.eval.every = 400
  if base == "sweep":
    return c
  c.data.sources.ti.corpus = "synthetic_voices/ti_960"
  c.data.sources.hts = source_specs.source("hts_voices/ti", HTS_WEIGHT)
  c.train.num_steps = c.optimizer.decay_steps = 1200
  c.eval.conditions = c.eval.conditions + ",hts_voices/ti:test"
  c.augment.short.prob, c.augment.short.fill = SHORT_PROB, "pad"
  c.augment.noise.prob, c.augment.noise.snr_db = NOISE_PROB, NOISE_SNR_DB
  return c
