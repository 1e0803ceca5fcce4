"""N speakers x M utterances of raw-audio crops: the GE2E batch (paper §2.1, §3) in tf.data.

Each batch is a pure function of ``(seed, step)`` built from stateless TF random ops, so the
pipeline's position is just the step number: store the step in the checkpoint and
``pipeline.iterator(start_step=step)`` resumes with exactly the batches an uninterrupted run
would have seen (``tf.data.Dataset.counter(start=step)`` drives a parallel map).

What one batch draws, on host ``p`` of ``P`` (``N / P`` local speakers):
  * speakers: the host's speakers are walked in epochs; epoch ``e`` is a fresh pseudorandom
    permutation (``index_shuffle`` keyed by ``(seed, p, e)``) cut into consecutive runs of
    ``N / P``. Speakers in a batch are therefore always distinct, and every speaker appears
    once per epoch (``len(shard) // (N / P)`` batches; the remainder waits for a later epoch).
  * utterances: ``M`` distinct ones per speaker, a uniform random subset per speaker and step.
  * crop: one length per step for ALL hosts and sources (keyed by ``(seed, step)`` only) —
    uniform in ``[140, 180]`` frames for TI, 80 frames for TD, frames -> samples by
    ``ge2e_jax.features.samples_for_frames``. The start is a uniform frame of the utterance
    (a multiple of the 10 ms hop), so a crop's frames are exactly frames of the whole
    utterance, as when cropping its feature matrix. An utterance shorter than the crop is
    tiled (repeat-padded) from its start to the crop length.
Speakers with fewer than ``M`` utterances are dropped at load (logged); speaker ids index
``pipeline.speakers``, the sorted names of the eligible speakers of the split (the same list on
every host, so ids stay distinct across hosts; host ``p`` owns ids ``p, p + P, ...``).

Storage (``storage=``, ``cache_dir=``): one loader (``load_shard``) and one crop
(``speaker_cache.Rows.crops``, run per batch in ``tf.numpy_function``) for every storage, so
the batches are the same bit for bit on each:
  * ``"memory"`` with ``cache_dir``: the speaker cache (``data_pipelines.speaker_cache``) read
    whole for the host's speakers into RAM, int16 rows of one hop (each utterance from a row
    start; 2 bytes/sample = 115 MB per hour of 16 kHz audio). Start-up reads the cache's
    index plus ~1/P of the audio.
  * ``"memory"`` without a cache: the same rows in RAM, read from the TFDS split
    (``tfds_examples``; names, then audio: twice on every host): for small corpora.
  * ``"cache"``: the rows stay in the cache file and each crop is ``pread``. RAM holds the
    index only, so RAM does not bound the corpus, and start-up reads the index only.
Per-batch cost does not grow with the corpus: ``N/P * M * crop`` samples copied (or read),
plus ``N/P`` x (most utterances of one speaker) random keys. BENCHMARKS.md times all three.
"""

from __future__ import annotations

import atexit
import collections
import dataclasses
import logging
import weakref
from typing import Callable, Iterable, Iterator

import numpy as np
import tensorflow as tf

from data_pipelines import corpus
from data_pipelines import speaker_cache
from data_pipelines.source_specs import STORAGES
from ge2e_jax.audio import INT16_SCALE
from ge2e_jax.features import HOP_LENGTH, SAMPLE_RATE, samples_for_frames

log = logging.getLogger(__name__)

TI_CROP_FRAMES = (140, 180)
TD_CROP_FRAMES = (80, 80)
# Independent random streams folded into the seed.
_CROP_STREAM, _SPEAKER_STREAM, _UTTERANCE_STREAM = 0, 1, 2


def crop_frames_for(crop: str | tuple[int, int]) -> tuple[int, int]:
  """`"ti"`, `"td"` or an inclusive `(min_frames, max_frames)` -> `(min, max)` frames."""
  if isinstance(crop, str):
    presets = {"ti": TI_CROP_FRAMES, "td": TD_CROP_FRAMES}
    if crop not in presets:
      raise ValueError(f"crop must be 'ti', 'td' or (min_frames, max_frames); got {crop!r}")
    return presets[crop]
  lo, hi = (int(x) for x in crop)
  if not 1 <= lo <= hi:
    raise ValueError(f"crop frames must satisfy 1 <= min <= max; got {crop!r}")
  return lo, hi


def fold_key(seed: int, *data) -> tf.Tensor:
  """A stateless-RNG key ([2] int64) for `seed` with `data` (ints or int64 scalars) folded in."""
  key = tf.constant([seed, 0], tf.int64)
  for d in data:
    key = tf.random.experimental.stateless_fold_in(key, tf.cast(d, tf.int64))
  return key


def crop_samples(seed: int, step, crop_frames: tuple[int, int]) -> tf.Tensor:
  """Crop length in samples for `step` (int64 scalar): one draw per step, shared by all hosts."""
  lo, hi = crop_frames
  table = tf.constant([samples_for_frames(f) for f in range(lo, hi + 1)], tf.int64)
  return table[tf.random.stateless_uniform(
      [], fold_key(seed, _CROP_STREAM, step), maxval=hi - lo + 1, dtype=tf.int64)]


@dataclasses.dataclass(frozen=True)
class SpeakerShard:
  """One host's speakers and their audio, utterances grouped by speaker.

  speakers: sorted names of ALL eligible speakers of the split (ids index this, every host).
  speaker_ids: (S,) ids of this host's speakers; their utterances are contiguous:
    `first_utterance[s] : first_utterance[s] + num_utterances[s]`.
  utterances: (U,) utterance names. Utterance u has `utterance_length[u]` samples stored from
    row `utterance_row[u]` of `audio` (`speaker_cache.MemoryRows` in RAM or
    `speaker_cache.DiskRows` in the cache file).
  """
  speakers: tuple[str, ...]
  speaker_ids: np.ndarray
  num_utterances: np.ndarray
  utterances: tuple[str, ...]
  utterance_row: np.ndarray
  utterance_length: np.ndarray
  audio: speaker_cache.Rows
  num_dropped_speakers: int

  @property
  def first_utterance(self) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(self.num_utterances)[:-1]]).astype(np.int64)


def load_shard(source, *, min_utterances: int, process_index: int = 0,
               process_count: int = 1, in_memory: bool = True,
               what: str = "corpus") -> SpeakerShard:
  """This host's `SpeakerShard` of a split: the one loader of every storage.

  source: an opened `speaker_cache.Cache`, or `SplitExamples` (a split read into RAM without
    a cache); either has `speaker_counts()` and `read_speakers(speakers, in_memory=)`.
  Eligible speakers are the sorted names of those with at least `min_utterances`; host p owns
  ids p, p + P, ... . `in_memory`: the host's audio in RAM, else left in the cache file.
  """
  if not 0 <= process_index < process_count:
    raise ValueError(f"process_index must be in [0, {process_count}); got {process_index}")
  counts = source.speaker_counts()
  speakers = tuple(sorted(s for s, c in counts.items() if c >= min_utterances))
  dropped = len(counts) - len(speakers)
  (log.warning if dropped else log.info)(
      "%s: %d speakers, %d dropped for having fewer than %d utterances",
      what, len(counts), dropped, min_utterances)
  ids = range(process_index, len(speakers), process_count)
  num, utterances, rows, lengths, audio = source.read_speakers(
      [speakers[i] for i in ids], in_memory=in_memory)
  return SpeakerShard(
      speakers=speakers,
      speaker_ids=np.array(ids, np.int32),
      num_utterances=num,
      utterances=tuple(utterances),
      utterance_row=rows,
      utterance_length=lengths,
      audio=audio,
      num_dropped_speakers=dropped,
  )


def _as_str(x) -> str:
  return x.decode() if isinstance(x, bytes) else str(x)


class SplitExamples:
  """A split read from its examples into RAM: the `load_shard` source without a cache.

  names: `names()` yields every `(speaker, utterance)` of the split (a cheap pass, no audio).
  read: `read(keep)` yields `(speaker, utterance, int16 audio)` of the split; only speakers in
    the set `keep` are stored.
  """

  def __init__(self, names: Callable[[], Iterable[tuple[str, str]]],
               read: Callable[[set[str]], Iterable[tuple[str, str, np.ndarray]]],
               what: str = "corpus"):
    self._names, self._read, self.what = names, read, what

  def speaker_counts(self) -> dict[str, int]:
    return collections.Counter(_as_str(s) for s, _ in self._names())

  def read_speakers(self, speakers: list[str], *, in_memory: bool):
    """As `speaker_cache.Cache.read_speakers`; the audio is always read into RAM."""
    if not in_memory:
      raise ValueError(f"{self.what}: audio left on disk needs a speaker cache (cache_dir)")
    keep = set(speakers)
    by_speaker = collections.defaultdict(list)
    for speaker, utterance, audio in self._read(keep):
      speaker = _as_str(speaker)
      if speaker in keep:
        by_speaker[speaker].append((_as_str(utterance),
                                    np.asarray(audio, np.int16).reshape(-1)))
    num = np.array([len(by_speaker[s]) for s in speakers], np.int64)
    names, parts = [], []
    for s in speakers:
      for name, audio in sorted(by_speaker.pop(s), key=lambda u: u[0]):
        if audio.size == 0:
          raise ValueError(f"{self.what}: utterance {name!r} has no audio samples")
        names.append(name)
        parts.append(audio)
    lengths = np.array([a.size for a in parts], np.int64)

    def fill(array, starts):
      flat = array.reshape(-1)
      for u, start in enumerate(starts):
        audio, parts[u] = parts[u], None  # each utterance freed once copied
        flat[start * HOP_LENGTH:start * HOP_LENGTH + audio.size] = audio

    audio, rows = speaker_cache.memory_rows(lengths, fill)
    return num, names, rows, lengths, audio


def split_examples(open_split: Callable[[bool], tf.data.Dataset],
                   what: str = "corpus") -> SplitExamples:
  """`SplitExamples` of `open_split(with_audio)`, a split's tf.data of the corpus features."""

  def names():
    ds = open_split(False)
    for ex in ds.batch(4096).as_numpy_iterator():
      yield from zip(ex["speaker"], ex["utterance"])

  def read(keep):
    ds = open_split(True)
    if keep:
      table = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(
          tf.constant(sorted(keep)), tf.ones([len(keep)], tf.int32)), default_value=0)
      ds = ds.filter(lambda ex: table.lookup(ex["speaker"]) > 0)
    for ex in ds.as_numpy_iterator():
      yield ex["speaker"], ex["utterance"], ex["audio"]

  return SplitExamples(names, read, what)


def tfds_examples(name: str, split: str, data_dir: str | None = None) -> SplitExamples:
  """`SplitExamples` of a prepared corpus split (`data_pipelines.corpus.open_split`)."""
  return split_examples(
      lambda with_audio: corpus.open_split(name, split, data_dir, with_audio=with_audio),
      what=f"{name} split {split!r}")


_OPEN_ITERATORS = weakref.WeakSet()


@atexit.register
def _close_open_iterators():
  for iterator in list(_OPEN_ITERATORS):
    iterator.close()


class BatchIterator:
  """Numpy batches from `start_step` on; `position` is the step of the next batch (checkpoint it).

  Iterators still open when Python exits are closed by an atexit hook: a tf.data iterator
  whose threads are inside a `tf.numpy_function` (where crops are copied) would otherwise
  deadlock interpreter shutdown (those threads wait for the GIL forever). Code iterating
  `.dataset()` itself should likewise drop its iterators before exit.
  """

  def __init__(self, dataset: tf.data.Dataset, start_step: int):
    self._it = dataset.as_numpy_iterator()
    self.position = int(start_step)
    _OPEN_ITERATORS.add(self)

  def close(self) -> None:
    self._it = None

  def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
    return self

  def __next__(self) -> dict[str, np.ndarray]:
    if self._it is None:
      raise StopIteration
    batch = next(self._it)
    self.position += 1
    return batch


class SpeakerBatches:
  """The GE2E batch pipeline over one host's `SpeakerShard` (see module docstring).

  Batches are `{"audio": (N/P, M, S) float32 in [-1, 1), "speaker": (N/P,) int32}` (ids index
  `self.speakers`); with `provenance=True` also `"utterance": (N/P, M) int32` (indexes
  `self.utterances`) and `"padded": (N/P, M) bool` (the utterance was shorter than the crop).
  """

  def __init__(self, shard: SpeakerShard, *, n_speakers: int, n_utterances: int,
               crop: str | tuple[int, int], seed: int, process_index: int = 0,
               process_count: int = 1, provenance: bool = False, what: str = "corpus"):
    if n_speakers < 1 or n_utterances < 2:
      raise ValueError(f"need n_speakers >= 1 and n_utterances >= 2 (a leave-one-out centroid);"
                       f" got N={n_speakers}, M={n_utterances}")
    if n_speakers % process_count:
      raise ValueError(f"n_speakers={n_speakers} must divide evenly over "
                       f"process_count={process_count} hosts")
    self.n_local = n_speakers // process_count
    if len(shard.speakers) < n_speakers or len(shard.speaker_ids) < self.n_local:
      raise ValueError(
          f"{what} has {len(shard.speakers)} speakers with at least M={n_utterances} "
          f"utterances ({shard.num_dropped_speakers} with fewer were dropped); a batch needs "
          f"N={n_speakers} distinct speakers ({self.n_local} on each of {process_count} hosts;"
          f" host {process_index} holds {len(shard.speaker_ids)})")
    if int(shard.num_utterances.min()) < n_utterances:
      raise ValueError(f"shard was loaded with fewer than M={n_utterances} utterances per "
                       f"speaker; reload it with min_utterances={n_utterances}")
    self.shard = shard
    self.speakers = shard.speakers
    self.utterances = shard.utterances
    self.n_speakers, self.n_utterances = n_speakers, n_utterances
    self.crop_frames = crop_frames_for(crop)
    self.seed, self.process_index, self.process_count = seed, process_index, process_count
    self.provenance = provenance
    self.stats = self._padding_stats()
    log.info("%s, host %d/%d: %d speakers, %d utterances, %.1f s of audio; %s",
             what, process_index, process_count, len(shard.speaker_ids),
             len(shard.utterances), shard.utterance_length.sum() / SAMPLE_RATE, self.stats)
    self._speaker_ids = tf.constant(shard.speaker_ids)
    self._first = tf.constant(shard.first_utterance)
    self._count = tf.constant(shard.num_utterances)
    self._max_count = int(shard.num_utterances.max())
    self._row = tf.constant(shard.utterance_row)
    self._length = tf.constant(shard.utterance_length)

  def _padding_stats(self) -> dict[str, int]:
    lo, hi = (samples_for_frames(f) for f in self.crop_frames)
    length = self.shard.utterance_length
    return {"utterances": int(length.size),
            "shorter_than_min_crop": int((length < lo).sum()),
            "shorter_than_max_crop": int((length < hi).sum())}

  def crop_samples(self, step) -> tf.Tensor:
    return crop_samples(self.seed, step, self.crop_frames)

  def batch(self, step, length, stream: int = 0) -> dict[str, tf.Tensor]:
    """The local batch for `step` with crops of `length` samples (graph code, int64 scalars).

    `stream` separates independent draws over the same shard (MultiReader passes its source).
    """
    n, m = self.n_local, self.n_utterances
    step = tf.cast(step, tf.int64)
    num_local = len(self.shard.speaker_ids)
    per_epoch = num_local // n
    epoch, slot = step // per_epoch, step % per_epoch
    key = (self.seed, stream, self.process_index)
    local = tf.random.experimental.index_shuffle(
        slot * n + tf.range(n, dtype=tf.int64),
        fold_key(*key, _SPEAKER_STREAM, epoch), num_local - 1)
    # M distinct utterances per speaker: the top M of iid uniform keys over its utterances (a
    # uniform random subset). Costs N/P x (most utterances of any speaker) draws per batch;
    # index_shuffle with per-speaker seeds and bounds would be O(M) but is far slower per
    # element on CPU (BENCHMARKS.md, "One crop path for every storage").
    count = tf.gather(self._count, local)
    keys = tf.random.stateless_uniform([n, self._max_count],
                                       fold_key(*key, _UTTERANCE_STREAM, step))
    keys = tf.where(tf.range(self._max_count, dtype=tf.int64) < count[:, None], keys, -1.0)
    pick = tf.cast(tf.math.top_k(keys, m, sorted=False).indices, tf.int64)
    utt = tf.gather(self._first, local)[:, None] + pick
    audio, padded = self._crop(utt, length, fold_key(*key, _CROP_STREAM, step))
    out = {"audio": audio, "speaker": tf.gather(self._speaker_ids, local)}
    if self.provenance:
      out.update(utterance=tf.cast(utt, tf.int32), padded=padded)
    return out

  def _crop(self, utt, length, key):
    """(n, m) utterance indices -> (n, m, length) float32 crops, tiled where too short.

    Draws each crop's start frame here; the samples are copied by `Rows.crops`, the same
    code for audio in RAM and in the cache file.
    """
    size = tf.gather(self._length, utt)
    row = tf.gather(self._row, utt)
    starts = tf.maximum((size - length) // HOP_LENGTH + 1, 1)  # frame-aligned starts that fit
    first = row + tf.cast(tf.floor(tf.random.stateless_uniform(tf.shape(utt), key,
                                                               dtype=tf.float64)
                                   * tf.cast(starts, tf.float64)), tf.int64)
    crops = tf.numpy_function(self.shard.audio.crops, [first, row, size, length], tf.int16,
                              stateful=False)
    crops = tf.ensure_shape(crops, [self.n_local, self.n_utterances, None])
    return tf.cast(crops, tf.float32) / INT16_SCALE, size < length  # as audio.from_int16

  def _element(self, step):
    return self.batch(step, self.crop_samples(step))

  def dataset(self, start_step: int = 0) -> tf.data.Dataset:
    """Batches for steps `start_step, start_step + 1, ...`, mapped in parallel and prefetched."""
    return prefetched(tf.data.Dataset.counter(start=start_step, dtype=tf.int64)
                      .map(self._element, num_parallel_calls=tf.data.AUTOTUNE,
                           deterministic=True))

  def iterator(self, start_step: int = 0) -> BatchIterator:
    return BatchIterator(self.dataset(start_step), start_step)


def prefetched(ds: tf.data.Dataset) -> tf.data.Dataset:
  """Prefetches `ds` keeping step order (the k-th batch out must be step k's)."""
  options = tf.data.Options()
  options.deterministic = True
  return ds.prefetch(tf.data.AUTOTUNE).with_options(options)


def speaker_batches(name: str, split: str, *, n_speakers: int, n_utterances: int,
                    crop: str | tuple[int, int], seed: int, data_dir: str | None = None,
                    process_index: int = 0, process_count: int = 1,
                    provenance: bool = False, storage: str = "memory",
                    cache_dir: str | None = None) -> SpeakerBatches:
  """Loads this host's shard of TFDS `name` / `split` and returns its `SpeakerBatches`.

  `name` is a TFDS name such as `"synthetic_voices/ti"`; `data_dir` where it was prepared.
  Multi-host: pass `process_index=jax.process_index(), process_count=jax.process_count()`;
  `n_speakers` is the global N, each host yields N / P. Iterate with `.iterator(start_step)`
  (numpy dicts, `.position` to checkpoint) or compose `.dataset(start_step)`.
  `storage` / `cache_dir`: where the audio is read from and kept (module docstring); a cache is
  built beforehand with `python -m data_pipelines.build_cache`.
  """
  if storage not in STORAGES:
    raise ValueError(f"storage must be one of {STORAGES}; got {storage!r}")
  if storage == "cache" and not cache_dir:
    raise ValueError("storage='cache' reads a speaker cache: give cache_dir (built with "
                     "python -m data_pipelines.build_cache)")
  source = (speaker_cache.open_cache(cache_dir, name, split, data_dir=data_dir) if cache_dir
            else tfds_examples(name, split, data_dir))
  shard = load_shard(source, min_utterances=n_utterances, process_index=process_index,
                     process_count=process_count, in_memory=storage == "memory",
                     what=f"{name} split {split!r}")
  return SpeakerBatches(shard, n_speakers=n_speakers, n_utterances=n_utterances, crop=crop,
                        seed=seed, process_index=process_index, process_count=process_count,
                        provenance=provenance, what=f"{name} split {split!r}")
