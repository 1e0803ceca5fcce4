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

Storage (``storage=``, ``cache_dir=``; the batches are the same bit for bit on every path):
  * ``"memory"`` without a cache: each host holds its speaker shard in RAM, int16 in a
    ``tf.Variable`` of hop-sized rows (each utterance starts on a row; 2 bytes/sample = 115 MB
    per hour of 16 kHz audio), so a crop is one in-graph row gather, no Python per batch.
    Start-up reads the TFDS split twice (names, then audio) on every host: for small corpora.
  * ``"memory"`` with ``cache_dir``: the same in-RAM shard, copied from a speaker cache
    (``data_pipelines.speaker_cache``), so start-up reads the index plus ~1/P of the audio.
  * ``"cache"``: the shard stays in the cache file; each batch ``pread``s its crops
    (``tf.numpy_function``). RAM holds the index only, so RAM does not bound the corpus, and
    start-up reads the index only.
Per-batch cost does not grow with the corpus: ``N/P * M * crop`` samples copied (or read),
plus ``N/P`` x (most utterances of one speaker) random keys. BENCHMARKS.md times all three.
"""

from __future__ import annotations

import atexit
import collections
import dataclasses
import logging
import weakref
from typing import TYPE_CHECKING, Callable, Iterable, Iterator

import numpy as np
import tensorflow as tf

from ge2e_jax.audio import INT16_SCALE
from ge2e_jax.features import HOP_LENGTH, SAMPLE_RATE, samples_for_frames

if TYPE_CHECKING:
  from data_pipelines import speaker_cache

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
    row `utterance_row[u]` of `audio`, a (rows, HOP_LENGTH) int16 tf.Variable (pipelines
    share it) or a `speaker_cache.DiskRows` (rows of the cache file, read per batch); the tail
    of an utterance's last row is zero.
  """
  speakers: tuple[str, ...]
  speaker_ids: np.ndarray
  num_utterances: np.ndarray
  utterances: tuple[str, ...]
  utterance_row: np.ndarray
  utterance_length: np.ndarray
  audio: tf.Variable | speaker_cache.DiskRows
  num_dropped_speakers: int

  @property
  def first_utterance(self) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(self.num_utterances)[:-1]]).astype(np.int64)


def _as_str(x) -> str:
  return x.decode() if isinstance(x, bytes) else str(x)


def load_shard(
    names: Iterable[tuple[str, str]],
    read: Callable[[set[str]], Iterable[tuple[str, str, np.ndarray]]],
    *,
    min_utterances: int,
    process_index: int = 0,
    process_count: int = 1,
    what: str = "corpus",
) -> SpeakerShard:
  """Builds this host's `SpeakerShard` from a split, reading audio only for the shard.

  names: every `(speaker, utterance)` of the split (a cheap pass without audio).
  read: `read(keep)` yields `(speaker, utterance, int16 audio)` for the split; only speakers in
    the set `keep` are stored.
  """
  _check_host(process_index, process_count)
  counts = collections.Counter(_as_str(s) for s, _ in names)
  speakers, local, dropped = _eligible(counts, min_utterances, process_index, process_count,
                                       what)
  by_speaker = collections.defaultdict(list)
  for speaker, utterance, audio in read(set(local)):
    speaker = _as_str(speaker)
    if speaker in local:
      by_speaker[speaker].append((_as_str(utterance), np.asarray(audio, np.int16).reshape(-1)))
  ordered = sorted(local, key=local.get)
  num = np.array([len(by_speaker[s]) for s in ordered], np.int64)
  names, parts = [], []
  for s in ordered:
    for name, audio in sorted(by_speaker.pop(s), key=lambda u: u[0]):
      if audio.size == 0:
        raise ValueError(f"{what}: utterance {name!r} has no audio samples")
      names.append(name)
      parts.append(audio)
  lengths = np.array([a.size for a in parts], np.int64)
  parts.reverse()  # popped in row order, so each utterance is freed once copied

  def fill(block, offsets, utterances):
    for at, _ in zip(offsets, utterances):
      audio = parts.pop()
      block.reshape(-1)[at * HOP_LENGTH:at * HOP_LENGTH + audio.size] = audio

  audio, starts = _rows_variable(lengths, fill)
  return SpeakerShard(
      speakers=speakers,
      speaker_ids=np.array([local[s] for s in ordered], np.int32),
      num_utterances=num,
      utterances=tuple(names),
      utterance_row=starts,
      utterance_length=lengths,
      audio=audio,
      num_dropped_speakers=dropped,
  )


def _check_host(process_index, process_count):
  if not 0 <= process_index < process_count:
    raise ValueError(f"process_index must be in [0, {process_count}); got {process_index}")


def _eligible(counts, min_utterances, process_index, process_count, what):
  """(sorted eligible speaker names, {local name: id}, number dropped) from utterance counts."""
  _check_host(process_index, process_count)
  speakers = tuple(sorted(s for s, c in counts.items() if c >= min_utterances))
  dropped = len(counts) - len(speakers)
  (log.warning if dropped else log.info)(
      "%s: %d speakers, %d dropped for having fewer than %d utterances",
      what, len(counts), dropped, min_utterances)
  local = {s: i for i, s in enumerate(speakers) if i % process_count == process_index}
  return speakers, local, dropped


_BLOCK_ROWS = (64 << 20) // (2 * HOP_LENGTH)  # rows staged per copy into the variable (64 MB)


def _rows_variable(lengths: np.ndarray, fill) -> tuple[tf.Variable, np.ndarray]:
  """Utterances of `lengths` samples -> a (rows, HOP_LENGTH) int16 tf.Variable, each from a row
  start, and each utterance's first row.

  Filled through a zeroed staging block of whole utterances (at most _BLOCK_ROWS rows unless
  one utterance is longer): `fill(block, offsets, utterances)` writes utterances `utterances`
  at rows `offsets` of `block`. The variable then costs the shard plus one block, not twice the
  shard: it is allocated once (`Empty`, not a zeros tensor copied in) and each block is
  assigned in place (`v[a:b].assign` would read the variable first, and the read makes the
  assignment copy the whole variable).
  """
  rows = -(-lengths // HOP_LENGTH)
  ends = np.cumsum(rows)
  starts = (ends - rows).astype(np.int64)
  audio = tf.Variable(tf.raw_ops.Empty(shape=[int(rows.sum()), HOP_LENGTH], dtype=tf.int16,
                                       init=True), trainable=False, name="speaker_audio")
  first = 0
  while first < len(rows):
    end = max(int(np.searchsorted(ends, starts[first] + _BLOCK_ROWS, side="right")), first + 1)
    block = np.zeros([int(ends[end - 1] - starts[first]), HOP_LENGTH], np.int16)
    fill(block, starts[first:end] - starts[first], range(first, end))
    tf.raw_ops.ResourceStridedSliceAssign(
        ref=audio.handle, begin=[int(starts[first]), 0], end=[int(ends[end - 1]), HOP_LENGTH],
        strides=[1, 1], value=block)
    first = end
  return audio, starts


def load_cached_shard(cache, *, min_utterances: int, process_index: int = 0,
                      process_count: int = 1, in_memory: bool = False,
                      what: str = "corpus") -> SpeakerShard:
  """This host's `SpeakerShard` from an opened `speaker_cache.Cache`: reads the index only.

  Eligible speakers and ids follow `load_shard` exactly (sorted names of speakers with at least
  `min_utterances`; host p owns ids p, p + P, ...). `in_memory` copies the host's speakers'
  byte ranges into a tf.Variable; otherwise batches read their crops from the file.
  """
  from data_pipelines import speaker_cache  # pylint: disable=g-import-not-at-top
  index = cache.index
  names = cache.speaker_names()
  first_all, count_all = index["speaker_first_utterance"], index["speaker_num_utterances"]
  position = {name: k for k, name in enumerate(names)}
  speakers, local, dropped = _eligible(dict(zip(names, count_all.tolist())), min_utterances,
                                       process_index, process_count, what)
  ordered = sorted(local, key=local.get)
  spans = [(int(first_all[position[s]]), int(count_all[position[s]])) for s in ordered]
  utterance = np.concatenate([np.arange(f, f + c) for f, c in spans]).astype(np.int64)
  lengths = index["utterance_length"][utterance]
  rows = index["utterance_row"][utterance]
  num = np.array([c for _, c in spans], np.int64)
  utterance_names = tuple(cache.utterance_names(utterance))
  audio = speaker_cache.DiskRows(cache.audio_path, cache.manifest["num_rows"])
  if in_memory:
    disk, file_rows = audio, rows

    def fill(block, offsets, utterances):  # each utterance's rows, row-padding included
      for at, u in zip(offsets, utterances):
        end = at + -(-int(lengths[u]) // HOP_LENGTH)
        disk.read(block[at:end], int(file_rows[u]) * speaker_cache.ROW_BYTES)

    audio, rows = _rows_variable(lengths, fill)
  return SpeakerShard(
      speakers=speakers,
      speaker_ids=np.array([local[s] for s in ordered], np.int32),
      num_utterances=num,
      utterances=utterance_names,
      utterance_row=rows,
      utterance_length=lengths,
      audio=audio,
      num_dropped_speakers=dropped,
  )


def load_tfds_shard(name: str, split: str, *, data_dir: str | None = None,
                    **kwargs) -> SpeakerShard:
  """`load_shard` over a prepared corpus split (`data_pipelines.corpus.open_split`)."""
  from data_pipelines import corpus  # pylint: disable=g-import-not-at-top
  return load_split_shard(
      lambda with_audio: corpus.open_split(name, split, data_dir, with_audio=with_audio),
      what=f"{name} split {split!r}", **kwargs)


def load_split_shard(open_split: Callable[[bool], tf.data.Dataset], **kwargs) -> SpeakerShard:
  """`load_shard` over `open_split(with_audio)`, a split's tf.data of the corpus features."""

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

  return load_shard(names(), read, **kwargs)


_OPEN_ITERATORS = weakref.WeakSet()


@atexit.register
def _close_open_iterators():
  for iterator in list(_OPEN_ITERATORS):
    iterator.close()


class BatchIterator:
  """Numpy batches from `start_step` on; `position` is the step of the next batch (checkpoint it).

  Iterators still open when Python exits are closed by an atexit hook: a tf.data iterator
  whose threads are inside a `tf.numpy_function` (the cache path's reads) would otherwise
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
    # index_shuffle with per-speaker seeds and bounds would be O(M) but takes ~70 us per
    # element on CPU (40 ms for 64 x 10).
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

    A crop starting on a row boundary is ceil(length / HOP) consecutive rows (one row gather,
    memcpy-fast); only the rare too-short utterances take an element-wise gather to tile.
    """
    size = tf.gather(self._length, utt)
    row = tf.gather(self._row, utt)
    starts = tf.maximum((size - length) // HOP_LENGTH + 1, 1)  # frame-aligned starts that fit
    first = row + tf.cast(tf.floor(tf.random.stateless_uniform(tf.shape(utt), key,
                                                               dtype=tf.float64)
                                   * tf.cast(starts, tf.float64)), tf.int64)
    padded = size < length
    if isinstance(self.shard.audio, tf.Variable):
      num_rows = -(-length // HOP_LENGTH)
      rows = tf.minimum(first[..., None] + tf.range(num_rows), self.shard.audio.shape[0] - 1)
      crops = tf.reshape(tf.gather(self.shard.audio, rows),
                         [self.n_local, self.n_utterances, num_rows * HOP_LENGTH])[..., :length]
      crops = tf.cond(tf.reduce_any(padded),
                      lambda: self._tile(crops, padded, row, size, length), lambda: crops)
    else:  # rows on disk (speaker_cache.DiskRows): the same crops, read with pread
      crops = tf.numpy_function(self.shard.audio.crops, [first, row, size, length], tf.int16,
                                stateful=False)
      crops = tf.ensure_shape(crops, [self.n_local, self.n_utterances, None])
    return tf.cast(crops, tf.float32) / INT16_SCALE, padded  # as audio.from_int16

  def _tile(self, crops, padded, row, size, length):
    """Rewrites the padded crops as their utterance repeated from its start."""
    where = tf.where(padded)
    sample = (tf.gather_nd(row, where)[:, None] * HOP_LENGTH
              + tf.range(length) % tf.gather_nd(size, where)[:, None])
    tiled = tf.gather_nd(self.shard.audio,
                         tf.stack([sample // HOP_LENGTH, sample % HOP_LENGTH], -1))
    return tf.tensor_scatter_nd_update(crops, where, tiled)

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


STORAGES = ("memory", "cache")


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
  host = dict(min_utterances=n_utterances, process_index=process_index,
              process_count=process_count)
  if cache_dir:
    from data_pipelines import speaker_cache  # pylint: disable=g-import-not-at-top
    cache = speaker_cache.open_cache(cache_dir, name, split, data_dir=data_dir)
    shard = load_cached_shard(cache, in_memory=storage == "memory",
                              what=f"{name} split {split!r}", **host)
  else:
    shard = load_tfds_shard(name, split, data_dir=data_dir, **host)
  return SpeakerBatches(shard, n_speakers=n_speakers, n_utterances=n_utterances, crop=crop,
                        seed=seed, process_index=process_index, process_count=process_count,
                        provenance=provenance, what=f"{name} split {split!r}")
