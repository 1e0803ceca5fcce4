"""MultiReader (Wan et al. 2018, §2.3): K sources with weights α_k, L = Σ_k α_k E_{D_k}[L].

Two modes, both pure functions of ``(seed, step)`` like `SpeakerBatches`, so the checkpoint
stores only the step (``reader.iterator(start_step=step)`` resumes exactly):

Shapes below are per host (N is N/P on each of P hosts; `global_batch` joins them).

* ``stacked`` (the paper): every step carries one N x M batch per source,
  ``{"audio": (K, N, M, S), "speaker": (K, N), "weights": (K,) float32}``; block k holds only
  source k's speakers (ids index ``sources[k].speakers``), all blocks share the crop length S.
  The trainer computes one similarity matrix per block and the loss Σ_k α_k L_k.
* ``sampled``: each step draws ONE source with probability α_k / Σα and yields its
  ``(N, M, S)`` batch plus ``"source": int32`` (its index in ``reader.names``; the same on
  every host, for the trainer's per-source metrics). The expected per-step loss is then
  Σ_k α_k L_k / Σα, so the batch carries no weight.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import tensorflow as tf

from data_pipelines import speaker_batches as sb
from data_pipelines.source_specs import MODES, parse_weights

_SOURCE_STREAM = 3


class MultiReader:
  """Batches from several `SpeakerBatches` sources (see module docstring).

  sources: {name: SpeakerBatches}; all must share N, M, crop, host sharding and provenance.
  weights: `{name: weight}` (or `"name:weight,..."`) naming sources; only named sources are
    read, in that order.
  seed: keys the crop length and (sampled mode) the source draw; each source keeps its own
    seed for its speakers and utterances, and is read on stream k so two sources built on the
    same corpus and seed still draw independently.
  """

  def __init__(self, sources: Mapping[str, sb.SpeakerBatches], weights: Mapping | str,
               *, mode: str = "stacked", seed: int = 0):
    if mode not in MODES:
      raise ValueError(f"MultiReader mode must be one of {MODES}; got {mode!r}")
    parsed = parse_weights(weights, sources)
    self.names = tuple(parsed)
    self.weights = np.array([parsed[n] for n in self.names], np.float32)
    self.sources = tuple(sources[n] for n in self.names)
    shapes = [(src.n_speakers, src.n_utterances, src.crop_frames, src.process_index,
               src.process_count, src.provenance) for src in self.sources]
    for name, shape in zip(self.names, shapes):
      if shape != shapes[0]:
        raise ValueError(
            f"MultiReader source {name!r} has (N, M, crop frames, process index, process count,"
            f" provenance) = {shape}; source {self.names[0]!r} has {shapes[0]}; they must match")
    self.mode, self.seed = mode, seed
    self.crop_frames = self.sources[0].crop_frames

  def _element(self, step):
    length = sb.crop_samples(self.seed, step, self.crop_frames)
    if self.mode == "stacked":
      parts = [src.batch(step, length, stream=k) for k, src in enumerate(self.sources)]
      out = {key: tf.stack([p[key] for p in parts]) for key in parts[0]}
      out["weights"] = tf.constant(self.weights)
      return out
    source = tf.random.stateless_categorical(
        tf.math.log(self.weights)[None], 1, sb.fold_key(self.seed, _SOURCE_STREAM, step),
        dtype=tf.int32)[0, 0]
    branches = [lambda k=k, src=src: src.batch(step, length, stream=k)
                for k, src in enumerate(self.sources)]
    out = tf.switch_case(source, branches)
    out["source"] = source
    return out

  def dataset(self, start_step: int = 0) -> tf.data.Dataset:
    """Batches for steps `start_step, start_step + 1, ...`, mapped in parallel and prefetched."""
    return sb.prefetched(tf.data.Dataset.counter(start=start_step, dtype=tf.int64)
                         .map(self._element, num_parallel_calls=tf.data.AUTOTUNE,
                              deterministic=True))

  def iterator(self, start_step: int = 0) -> sb.BatchIterator:
    return sb.BatchIterator(self.dataset(start_step), start_step)
