"""TD-SV, the paper's setting: 128 cells / projection 64, 64 x 10 batches of 80 frames.

Trained with augmentation (noise at 0-20 dB, reverberation, babble, telephone channel, gain)
and scored at every evaluation on voices of language families never in train, clean and in
noise, and on real human speakers (what augmentation and each of its kinds changed:
RESULTS.md §0).
"""

from experiments.configs import default

# Held-out voices of language families never in train, clean and in noise.
SYNTHETIC_CONDITIONS = "test_unseen_lang,test_unseen_lang+noise_snr5..15"
# Real human speakers (recorded_voices:test, `make recorded-voices`; docs/recorded_voices.md):
# clean, in noise and reverberant, and their single clips of about a second (test_clips).
# RECORDED_IF_PREPARED skips them where not built.
RECORDED_CONDITIONS = ("recorded_voices:test,recorded_voices:test+noise_snr5..15,"
                       "recorded_voices:test+reverb,recorded_voices:test_clips")


def if_prepared(conditions: str) -> str:
  """Every condition of ``conditions`` made optional ("?"): skipped where its corpus is not
  built."""
  return ",".join("?" + c for c in conditions.split(","))


RECORDED_IF_PREPARED = if_prepared(RECORDED_CONDITIONS)


def get_config():
  c = default.get_config()
  c.augment.noise.prob = 0.5
  c.augment.noise.snr_db = (0.0, 20.0)
  c.augment.reverb.prob = 0.3
  c.augment.babble.prob = 0.2
  c.augment.channel.prob = 0.2
  c.augment.gain.prob = 0.3
  c.eval.conditions = f"{SYNTHETIC_CONDITIONS},{RECORDED_CONDITIONS}"
  return c
