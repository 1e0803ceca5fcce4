"""The speaker cache (data_pipelines.speaker_cache) against the raw TFDS split and the in-RAM path.

References are independent of the cache code: utterances read straight from TFDS, the file
decoded here with plain NumPy, and the in-RAM pipeline loaded from TFDS (the existing path).
"""

import json
import os
import shutil

import numpy as np
import pytest
import tensorflow_datasets as tfds

from data_pipelines import build_cache
from data_pipelines import speaker_batches as sb
from data_pipelines import speaker_cache as sc

N, M = 4, 3


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory, synthetic_td, synthetic_ti):
  root = tmp_path_factory.mktemp("speaker_cache")
  for corpus in (synthetic_td, synthetic_ti):
    sc.build_from_corpus(corpus.name, "train", str(root), corpus.data_dir)
  return str(root)


def _raw_split(corpus, split="train"):
  ds = tfds.load(corpus.name, split=split, data_dir=corpus.data_dir)
  return {ex["utterance"].decode(): (ex["speaker"].decode(), ex["audio"])
          for ex in ds.as_numpy_iterator()}


def _pipelines(corpus, cache_dir, **kwargs):
  """The same pipeline over TFDS in RAM, the cache in RAM and the cache on disk."""
  args = dict(n_speakers=N, n_utterances=M, seed=7, data_dir=corpus.data_dir, provenance=True)
  args.update(kwargs)
  return [sb.speaker_batches(corpus.name, "train", **args),
          sb.speaker_batches(corpus.name, "train", cache_dir=cache_dir, **args),
          sb.speaker_batches(corpus.name, "train", cache_dir=cache_dir, storage="cache",
                             **args)]


def _take(pipeline, n, start=0):
  it = pipeline.iterator(start)
  return [next(it) for _ in range(n)]


def _assert_same(a, b):
  assert set(a) == set(b)
  for key in a:
    np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_cache_file_holds_every_utterance_by_speaker_on_row_starts(cache_dir, synthetic_td):
  raw = _raw_split(synthetic_td)
  path = sc.cache_path(cache_dir, synthetic_td.name, "train")
  manifest = json.load(open(os.path.join(path, "manifest.json")))
  index = np.load(os.path.join(path, "index.npz"))
  audio = np.fromfile(os.path.join(path, "audio.i16"), np.int16).reshape(-1, 160)
  names = index["utterance_names"].tobytes().decode()
  ends = index["utterance_name_ends"]
  utterances = [names[(ends[i - 1] if i else 0):ends[i]] for i in range(ends.size)]
  assert manifest["split"] == "train" and manifest["sample_rate"] == 16000
  assert manifest["num_utterances"] == len(raw) == len(utterances)
  assert manifest["num_samples"] == sum(a.size for _, a in raw.values())
  order = sorted(raw, key=lambda u: (raw[u][0], u))
  assert utterances == order
  row = 0
  for u, name in enumerate(utterances):
    assert index["utterance_row"][u] == row
    samples = raw[name][1]
    rows = -(-samples.size // 160)
    stored = audio[row:row + rows].reshape(-1)
    np.testing.assert_array_equal(stored[:samples.size], samples)
    assert not stored[samples.size:].any()
    row += rows
  assert row == audio.shape[0] == manifest["num_rows"]


@pytest.mark.parametrize("corpus_name,crop,hosts", [("synthetic_td", (100, 100), 1),
                                                    ("synthetic_ti", "ti", 2)])
def test_memory_and_cache_paths_give_the_same_batches_bit_for_bit(
    request, cache_dir, corpus_name, crop, hosts):
  corpus = request.getfixturevalue(corpus_name)
  host = dict(process_index=hosts - 1, process_count=hosts)
  tfds_ram, cache_ram, disk = _pipelines(corpus, cache_dir, crop=crop, **host)
  assert isinstance(disk.shard.audio, sc.DiskRows)
  assert tfds_ram.speakers == cache_ram.speakers == disk.speakers
  assert tfds_ram.utterances == cache_ram.utterances == disk.utterances
  padded = 0
  for a, b, c in zip(*(_take(p, 15) for p in (tfds_ram, cache_ram, disk))):
    _assert_same(a, b)
    _assert_same(a, c)
    padded += int(a["padded"].sum())
  if crop == (100, 100):
    assert padded > 0  # the tiling of too-short utterances was exercised


def test_resume_on_the_cache_path_is_bit_identical(cache_dir, synthetic_td):
  *_, disk = _pipelines(synthetic_td, cache_dir, crop="td")
  it = disk.iterator()
  for _ in range(5):
    next(it)
  expected = [next(it) for _ in range(4)]
  resumed = _pipelines(synthetic_td, cache_dir, crop="td")[2].iterator(start_step=it.position - 4)
  for a in expected:
    _assert_same(a, next(resumed))


def _thread_read_bytes():
  """Bytes this thread has read through read/pread syscalls (the kernel's count)."""
  with open("/proc/thread-self/io") as f:
    return int(next(line for line in f if line.startswith("rchar")).split()[1])


def test_a_host_reads_only_its_speakers_byte_ranges(cache_dir, synthetic_td):
  cache = sc.open_cache(cache_dir, synthetic_td.name, "train", data_dir=synthetic_td.data_dir)
  index, names = cache.index, cache.speaker_names()
  audio_bytes = cache.manifest["audio_bytes"]
  for p in range(2):
    before = _thread_read_bytes()
    shard = sb.load_shard(cache, min_utterances=M, process_index=p, process_count=2)
    read = _thread_read_bytes() - before
    own = {shard.speakers[i] for i in shard.speaker_ids}
    assert own == set(names[p::2])  # every speaker has 8 >= M utterances
    expected = 0  # the rows of the host's speakers' utterances, from the index
    for k, name in enumerate(names):
      if name in own:
        f, c = index["speaker_first_utterance"][k], index["speaker_num_utterances"][k]
        expected += 320 * int((-(-index["utterance_length"][f:f + c] // 160)).sum())
    assert 0.3 * audio_bytes < expected < 0.7 * audio_bytes
    assert expected <= read <= expected + 4096, (read, expected)
  before = _thread_read_bytes()
  sb.load_shard(cache, min_utterances=M, process_index=0, process_count=2, in_memory=False)
  assert _thread_read_bytes() - before < 4096  # on disk: nothing read until a batch asks


def test_an_interrupted_build_leaves_the_old_cache_as_it_was(cache_dir, synthetic_td, tmp_path):
  root = str(tmp_path)
  shutil.copytree(sc.cache_path(cache_dir, synthetic_td.name, "train"),
                  sc.cache_path(root, synthetic_td.name, "train"))
  before = sc.open_cache(root, synthetic_td.name, "train", data_dir=synthetic_td.data_dir)

  def examples():
    yield "spk", "utt/0", np.ones(1000, np.int16)
    raise KeyboardInterrupt  # the build is killed half-way

  path = sc.cache_path(root, synthetic_td.name, "train")
  with pytest.raises(KeyboardInterrupt):
    sc.write_cache(examples(), path, corpus=before.manifest["corpus"], split="train",
                   overwrite=True)
  assert sorted(os.listdir(os.path.dirname(path))) == ["train"]  # no temp left behind
  after = sc.open_cache(root, synthetic_td.name, "train", data_dir=synthetic_td.data_dir)
  assert after.manifest == before.manifest
  with pytest.raises(FileExistsError, match="exists; pass overwrite=True"):
    sc.write_cache(examples(), path, corpus=before.manifest["corpus"], split="train")


@pytest.fixture
def copied(cache_dir, synthetic_td, tmp_path):
  """A private copy of the td cache (the tests below damage it)."""
  shutil.copytree(sc.cache_path(cache_dir, synthetic_td.name, "train"),
                  sc.cache_path(str(tmp_path), synthetic_td.name, "train"))
  return str(tmp_path), sc.cache_path(str(tmp_path), synthetic_td.name, "train")


def _open(root, corpus, split="train"):
  return sb.speaker_batches(corpus.name, split, n_speakers=N, n_utterances=M, crop="td",
                            seed=0, data_dir=corpus.data_dir, storage="cache", cache_dir=root)


def test_missing_cache_names_the_path_and_the_build_command(synthetic_td, tmp_path):
  with pytest.raises(FileNotFoundError, match=r"no speaker cache for corpus .*manifest.json is "
                                              r"missing; build it with: python -m "
                                              r"data_pipelines.build_cache --corpus="):
    _open(str(tmp_path), synthetic_td)
  with pytest.raises(ValueError, match="storage='cache' reads a speaker cache: give cache_dir"):
    sb.speaker_batches(synthetic_td.name, "train", n_speakers=N, n_utterances=M, crop="td",
                       seed=0, data_dir=synthetic_td.data_dir, storage="cache")
  with pytest.raises(ValueError, match=r"storage must be one of \('memory', 'cache'\)"):
    sb.speaker_batches(synthetic_td.name, "train", n_speakers=N, n_utterances=M, crop="td",
                       seed=0, storage="ram")


def test_truncated_audio_file_is_an_error(copied, synthetic_td):
  root, path = copied
  audio = os.path.join(path, "audio.i16")
  os.truncate(audio, os.path.getsize(audio) - 320)
  with pytest.raises(ValueError, match=r"audio.i16 has \d+ bytes, the manifest says \d+ "
                                       r"\(truncated or partly copied\)"):
    _open(root, synthetic_td)


def test_changed_index_is_an_error(copied, synthetic_td):
  root, path = copied
  with np.load(os.path.join(path, "index.npz")) as npz:
    arrays = {k: npz[k] for k in npz.files}
  arrays["utterance_length"][0] += 1
  np.savez(os.path.join(path, "index.npz"), **arrays)
  with pytest.raises(ValueError, match="index.npz does not match the checksum"):
    _open(root, synthetic_td)
  os.remove(os.path.join(path, "index.npz"))
  with pytest.raises(FileNotFoundError, match="index.npz is missing"):
    _open(root, synthetic_td)


def test_cache_of_another_split_or_sample_rate_is_an_error(copied, synthetic_td):
  root, path = copied
  os.rename(path, os.path.join(os.path.dirname(path), "test"))  # train's cache as "test"
  with pytest.raises(ValueError, match=r"was built for split='train', not 'test'"):
    _open(root, synthetic_td, split="test")
  os.rename(os.path.join(os.path.dirname(path), "test"), path)
  manifest = json.load(open(os.path.join(path, "manifest.json")))
  manifest["sample_rate"] = 8000
  json.dump(manifest, open(os.path.join(path, "manifest.json"), "w"))
  with pytest.raises(ValueError, match=r"was built for sample_rate=8000, not 16000"):
    _open(root, synthetic_td)


@pytest.mark.slow  # builds a corpus twice
def test_cache_of_a_rebuilt_corpus_is_stale(tmp_path):
  """A real rebuild: the same corpus name prepared again with other contents."""
  from data_pipelines.builders import synthetic_voices  # pylint: disable=g-import-not-at-top
  data_dir, root = str(tmp_path / "tfds"), str(tmp_path / "cache")

  def prepare(utterances, **download):
    config = synthetic_voices.SyntheticVoicesConfig(
        name="stale_test", phrase="ok", num_train_speakers=2, num_test_speakers=1,
        utterances_per_speaker=utterances, num_workers=1)
    tfds.builder("synthetic_voices", config=config, data_dir=data_dir).download_and_prepare(
        download_config=tfds.download.DownloadConfig(**download))

  name = "synthetic_voices/stale_test"
  prepare(3)
  build_cache.main([f"--corpus={name}", "--split=train", f"--data_dir={data_dir}",
                    f"--cache_dir={root}"])
  build_cache.main([f"--corpus={name}", "--split=train", f"--data_dir={data_dir}",
                    f"--cache_dir={root}", "--verify"])
  prepare(4, download_mode=tfds.download.GenerateMode.FORCE_REDOWNLOAD)
  with pytest.raises(ValueError, match=r"stale_test/train is stale: corpus "
                                       r"'synthetic_voices/stale_test' at .* is not the one it "
                                       r"was built from.*rebuild with: python -m "
                                       r"data_pipelines.build_cache"):
    sc.open_cache(root, name, "train", data_dir=data_dir)
  build_cache.main([f"--corpus={name}", "--split=train", f"--data_dir={data_dir}",
                    f"--cache_dir={root}", "--overwrite"])
  assert sc.open_cache(root, name, "train", data_dir=data_dir).manifest["num_utterances"] == 8


def test_config_switch_selects_the_cache_in_the_trainer(cache_dir, synthetic_td):
  from experiments import training_loop  # pylint: disable=g-import-not-at-top
  from experiments.configs import default  # pylint: disable=g-import-not-at-top
  config = default.get_config()
  config.data.sources.ok.corpus = synthetic_td.name
  config.data.data_dir = synthetic_td.data_dir
  config.data.n_speakers, config.data.n_utterances = N, M
  assert config.data.storage == "memory"
  in_ram, _, _ = training_loop.build_input(config)
  config.data.storage, config.data.cache_dir = "cache", cache_dir
  on_disk, _, _ = training_loop.build_input(config)
  assert isinstance(on_disk.shard.audio, sc.DiskRows)
  assert isinstance(in_ram.shard.audio, sc.MemoryRows)
  for a, b in zip(_take(in_ram, 3), _take(on_disk, 3)):
    _assert_same(a, b)
