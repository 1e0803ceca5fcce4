"""Room impulse responses for the reverb kind: a bank built once on the host (NumPy), from
exponentially decaying noise and, optionally, image-method shoebox rooms (pyroomacoustics)."""

import dataclasses
import math

import numpy as np

from ge2e_jax.features import SAMPLE_RATE


def synthetic_rir(rng: np.random.Generator, rt60_s: float, drr_db: float, samples: int,
                  sample_rate: int = SAMPLE_RATE) -> np.ndarray:
  """A direct impulse at 0 + Gaussian noise whose energy decays 60 dB in ``rt60_s``.

  The tail's energy is 10^(-drr_db / 10) of the direct path's; unit total energy.
  """
  t = np.arange(samples) / sample_rate
  tail = rng.standard_normal(samples) * np.exp(-3.0 * math.log(10.0) * t / rt60_s)
  tail[0] = 0.0
  tail *= math.sqrt(10.0 ** (-drr_db / 10.0) / np.sum(tail ** 2))
  tail[0] = 1.0
  return tail / np.linalg.norm(tail)


def image_method_rir(rng: np.random.Generator, rt60_s: float, samples: int,
                     sample_rate: int = SAMPLE_RATE, max_order: int = 100) -> np.ndarray:
  """A shoebox room's RIR by the image method (pyroomacoustics), direct path moved to ~0.

  Room (3-10 x 3-8 x 2.4-4 m), source and microphone (>= 0.5 m from walls) are drawn; wall
  absorption follows Sabine's formula for ``rt60_s``. Rooms needing more than ``max_order``
  reflections (small rooms with long RT60; slow to simulate) are drawn again.
  """
  try:  # optional: the augment extra
    import pyroomacoustics as pra  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ImportError("config.augment.reverb.image_method > 0 needs pyroomacoustics: "
                      "pip install 'ge2e_jax[augment]', or set image_method=0") from e
  for _ in range(100):
    dims = rng.uniform([3.0, 3.0, 2.4], [10.0, 8.0, 4.0])
    try:
      absorption, order = pra.inverse_sabine(rt60_s, dims)
    except ValueError:  # the room is too large for this RT60
      continue
    if order <= max_order:
      break
  else:
    raise ValueError(f"no shoebox room in 100 draws gives RT60 {rt60_s} s with image order "
                     f"<= {max_order}")
  room = pra.ShoeBox(dims, fs=sample_rate, materials=pra.Material(absorption),
                     max_order=order)
  room.add_source(rng.uniform(0.5, dims - 0.5))
  room.add_microphone(rng.uniform(0.5, dims - 0.5))
  room.compute_rir()
  rir = np.asarray(room.rir[0][0], np.float64)
  start = max(int(np.argmax(np.abs(rir))) - 8, 0)  # keep the fractional-delay main lobe
  rir = rir[start:start + samples]
  rir = np.pad(rir, (0, samples - len(rir)))
  return rir / np.linalg.norm(rir)


@dataclasses.dataclass(frozen=True)
class RirBank:
  """(size, samples) unit-energy RIRs with the RT60 each was drawn for; 1 = image method."""
  rirs: np.ndarray
  rt60_s: np.ndarray
  image_method: np.ndarray


def build_rir_bank(options, sample_rate: int = SAMPLE_RATE) -> RirBank:
  """The bank, a pure function of ``options`` (the reverb kind's: ``bank_size``, ``rt60_s``,
  ``drr_db``, ``rir_seconds``, ``image_method``, ``bank_seed``); host NumPy."""
  rng = np.random.default_rng(options.bank_seed)
  samples = int(round(options.rir_seconds * sample_rate))
  n_image = int(round(options.image_method * options.bank_size))
  rirs, rt60s = [], []
  for k in range(options.bank_size):
    rt60 = float(rng.uniform(*options.rt60_s))
    if k < n_image:
      rirs.append(image_method_rir(rng, rt60, samples, sample_rate))
    else:
      rirs.append(synthetic_rir(rng, rt60, float(rng.uniform(*options.drr_db)), samples,
                                sample_rate))
    rt60s.append(rt60)
  return RirBank(np.stack(rirs).astype(np.float32), np.asarray(rt60s),
                 np.arange(options.bank_size) < n_image)
