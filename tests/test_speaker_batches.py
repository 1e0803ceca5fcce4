"""speaker_batches on a generated corpus (conftest's fake_librispeech_wide: TFDS's real
librispeech builder over noise-like flac files, no espeak-ng), checked against the audio the
fixture wrote.

The reference (`_raw_split`) is what the fixture wrote, independent of TFDS and of the
pipeline's flat-array store; crops are located in the raw int16 audio sample for sample.
"""

import logging
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from data_pipelines import global_batch as gb
from data_pipelines import speaker_batches as sb

N, M = 4, 3
TD_SAMPLES = 400 + 79 * 160  # 80 frames; the frame rule written out independently.
TI_SAMPLES = {400 + (f - 1) * 160 for f in range(140, 181)}


def _raw_split(corpus):
  """{utterance id: (speaker, int16 audio)} of the train subsets, as the fixture wrote them."""
  return {utt: (speaker, audio) for utt, (speaker, audio, _, subset) in corpus.written.items()
          if subset.startswith("train")}


def _take(pipeline, n, start=0):
  it = pipeline.iterator(start)
  return [next(it) for _ in range(n)]


def _crop_starts(crop, raw):
  """Every s with crop == raw[s:s+L] / 32768; [0] when crop is raw tiled from its start."""
  crop = crop * 32768.0
  assert np.all(crop == np.round(crop)), "crop is not int16 / 32768"
  crop = crop.astype(np.int64)
  raw = raw.astype(np.int64)
  if raw.size < crop.size:
    return [0] if np.array_equal(crop, np.resize(raw, crop.size)) else []
  starts = np.flatnonzero(raw[:raw.size - crop.size + 1] == crop[0])
  return [s for s in starts if np.array_equal(raw[s:s + crop.size], crop)]


@pytest.fixture(scope="module")
def corpus(fake_librispeech_wide):
  return fake_librispeech_wide


@pytest.fixture(scope="module")
def td_raw(corpus):
  return _raw_split(corpus)


@pytest.fixture(scope="module")
def td_shard(corpus):
  return sb.load_shard(sb.tfds_examples(corpus.name, "train", corpus.data_dir),
                       min_utterances=M)


def _pipeline(shard, **kwargs):
  args = dict(n_speakers=N, n_utterances=M, crop="td", seed=0, provenance=True)
  return sb.SpeakerBatches(shard, **{**args, **kwargs})


@pytest.fixture(scope="module")
def td_batches(td_shard):
  """200 consecutive td batches (provenance on), the audio of the first 20 kept."""
  batches = _take(_pipeline(td_shard), 200)
  for b in batches[20:]:
    del b["audio"]
  return batches


def test_public_entry_point_yields_exactly_audio_and_speaker(corpus, td_raw):
  pipeline = sb.speaker_batches(corpus.name, "train", data_dir=corpus.data_dir,
                                n_speakers=N, n_utterances=M, crop="td", seed=3)
  batch = next(pipeline.iterator())
  assert set(batch) == {"audio", "speaker"}
  assert batch["audio"].shape == (N, M, TD_SAMPLES) and batch["audio"].dtype == np.float32
  assert batch["speaker"].shape == (N,) and batch["speaker"].dtype == np.int32
  assert batch["audio"].min() >= -1.0 and batch["audio"].max() < 1.0
  assert list(pipeline.speakers) == sorted({spk for spk, _ in td_raw.values()})


def test_speakers_are_distinct_in_every_batch_and_each_epoch(td_batches, td_shard):
  per_epoch = len(td_shard.speaker_ids) // N
  for b in td_batches:
    assert len(set(b["speaker"].tolist())) == N
  for e in range(len(td_batches) // per_epoch):
    epoch = np.concatenate([b["speaker"] for b in td_batches[e * per_epoch:(e + 1) * per_epoch]])
    assert len(set(epoch.tolist())) == epoch.size, f"epoch {e} repeats a speaker"
  seen = set(np.concatenate([b["speaker"] for b in td_batches]).tolist())
  assert seen == set(range(len(td_shard.speakers)))


def test_utterances_are_distinct_and_belong_to_their_speaker(td_batches, td_shard, td_raw):
  for b in td_batches:
    for j, row in enumerate(b["utterance"]):
      names = [td_shard.utterances[u] for u in row]
      assert len(set(names)) == M
      assert {td_raw[name][0] for name in names} == {td_shard.speakers[b["speaker"][j]]}


def test_crops_are_frame_aligned_slices_of_the_raw_utterance(td_batches, td_shard, td_raw):
  first_frames = set()
  for b in td_batches[:20]:
    for j in range(N):
      for i in range(M):
        raw = td_raw[td_shard.utterances[b["utterance"][j, i]]][1]
        starts = [s for s in _crop_starts(b["audio"][j, i], raw) if s % 160 == 0]
        assert starts, "crop is not a hop-aligned slice of its utterance"
        first_frames.add(starts[0] // 160)
  assert len(first_frames) > 5  # random start frames, not always the utterance's first


def test_ti_crop_length_in_range_per_batch_and_varies(corpus):
  pipeline = sb.speaker_batches(corpus.name, "train", data_dir=corpus.data_dir,
                                n_speakers=N, n_utterances=M, crop="ti", seed=5)
  lengths = [b["audio"].shape[-1] for b in _take(pipeline, 60)]
  assert set(lengths) <= TI_SAMPLES
  # 60 uniform draws from 41 values: fewer than 15 distinct has probability < 1e-12.
  assert len(set(lengths)) >= 15


def test_short_utterances_are_tiled_and_counted(td_shard, td_raw):
  crop_frames = (100, 100)  # 16240 samples: each speaker's first take (14000) is shorter.
  length = 400 + 99 * 160
  short = sum(audio.size < length for _, audio in td_raw.values())
  assert 0 < short < len(td_raw)
  pipeline = _pipeline(td_shard, crop=crop_frames)
  assert pipeline.stats == {"utterances": len(td_raw), "shorter_than_min_crop": short,
                            "shorter_than_max_crop": short}
  padded_seen = 0
  for b in _take(pipeline, 10):
    for j in range(N):
      for i in range(M):
        raw = td_raw[td_shard.utterances[b["utterance"][j, i]]][1]
        assert b["padded"][j, i] == (raw.size < length)
        if raw.size < length:
          expected = np.resize(raw, length).astype(np.float64) / 32768
          np.testing.assert_array_equal(b["audio"][j, i], expected)
          padded_seen += 1
  assert padded_seen > 0


def test_same_seed_same_batches_other_seed_differs(td_shard, td_batches):
  again = _take(_pipeline(td_shard), 5)
  for a, b in zip(again, td_batches[:5]):
    for key in a:
      np.testing.assert_array_equal(a[key], b[key])
  other = _take(_pipeline(td_shard, seed=1), 5)
  assert any(not np.array_equal(a["utterance"], b["utterance"]) for a, b in zip(other, again))


def test_resume_from_saved_position_continues_exactly(td_shard, td_batches):
  it = _pipeline(td_shard).iterator()
  for _ in range(7):
    next(it)
  saved = it.position  # What the checkpoint stores.
  assert saved == 7
  expected = [next(it) for _ in range(6)]
  resumed = _pipeline(td_shard).iterator(start_step=saved)
  for a in expected:
    b = next(resumed)
    assert set(a) == set(b)
    for key in a:
      np.testing.assert_array_equal(a[key], b[key])
  assert resumed.position == saved + 6
  np.testing.assert_array_equal(expected[0]["audio"], td_batches[7]["audio"])


def test_too_few_speakers_fails_at_start_with_counts(td_shard):
  with pytest.raises(ValueError, match=r"has 12 speakers with at least M=3 .*needs N=13"):
    _pipeline(td_shard, n_speakers=13)


def test_speakers_with_too_few_utterances_are_dropped_and_logged(td_raw, caplog):
  # Real records of the split with 3 speakers cut down to 2 utterances each.
  speakers = sorted({spk for spk, _ in td_raw.values()})
  cut = set(speakers[:3])
  kept = []
  for name, (spk, audio) in sorted(td_raw.items()):
    if spk not in cut or sum(1 for s, _, _ in kept if s == spk) < 2:
      kept.append((spk, name, audio))
  with caplog.at_level(logging.INFO, logger=sb.__name__):
    examples = sb.SplitExamples(lambda: [(s, u) for s, u, _ in kept], lambda keep: iter(kept))
    shard = sb.load_shard(examples, min_utterances=M, what="cut corpus")
  assert "12 speakers, 3 dropped for having fewer than 3 utterances" in caplog.text
  assert shard.speakers == tuple(speakers[3:])
  with pytest.raises(ValueError, match=r"cut corpus has 9 speakers with at least M=3 "
                                       r"utterances \(3 with fewer were dropped\); a batch "
                                       r"needs N=10"):
    sb.SpeakerBatches(shard, n_speakers=10, n_utterances=M, crop="td", seed=0,
                      what="cut corpus")


@pytest.fixture(scope="module")
def host_shards(corpus):
  return [sb.load_shard(sb.tfds_examples(corpus.name, "train", corpus.data_dir),
                        min_utterances=M, process_index=p, process_count=2)
          for p in range(2)]


def test_two_hosts_read_disjoint_shards_covering_all_speakers(host_shards, td_shard):
  ids = [set(s.speaker_ids.tolist()) for s in host_shards]
  assert not ids[0] & ids[1]
  assert ids[0] | ids[1] == set(range(len(td_shard.speakers)))
  assert all(s.speakers == td_shard.speakers for s in host_shards)
  pipes = [sb.SpeakerBatches(s, n_speakers=N, n_utterances=M, crop="ti", seed=0,
                             process_index=p, process_count=2)
           for p, s in enumerate(host_shards)]
  for b0, b1 in zip(_take(pipes[0], 30), _take(pipes[1], 30)):
    assert b0["speaker"].shape == (N // 2,)
    assert set(b0["speaker"].tolist()) <= ids[0] and set(b1["speaker"].tolist()) <= ids[1]
    assert b0["audio"].shape == b1["audio"].shape  # one crop length per step on all hosts


@pytest.mark.slow  # a 4-device subprocess
def test_global_batch_assembles_speakers_over_devices(td_batches, tmp_path):
  """Four CPU devices (a subprocess, so XLA_FLAGS apply before jax starts)."""
  local = {"audio": td_batches[0]["audio"], "speaker": td_batches[0]["speaker"]}
  stacked = {"audio": np.stack([local["audio"]] * 2),
             "speaker": np.stack([local["speaker"]] * 2),
             "weights": np.array([0.7, 0.3], np.float32)}
  np.savez(tmp_path / "batch.npz", **{f"plain_{k}": v for k, v in local.items()},
           **{f"stacked_{k}": v for k, v in stacked.items()})
  script = textwrap.dedent(f"""
      import numpy as np, jax
      from data_pipelines.global_batch import global_batch
      from ge2e_jax import train_step
      data = np.load({str(tmp_path / "batch.npz")!r})
      mesh = train_step.make_mesh()
      assert len(jax.devices()) == 4
      for kind in ("plain", "stacked"):
        local = {{k[len(kind) + 1:]: data[k] for k in data.files if k.startswith(kind)}}
        out = global_batch(local, train_step.batch_sharding(mesh, stacked=kind == "stacked"))
        for key, value in local.items():
          np.testing.assert_array_equal(np.asarray(out[key]), value)
        axis = 0 if kind == "plain" else 1  # the speaker axis
        for key in ("audio", "speaker"):
          for shard in out[key].addressable_shards:
            assert shard.data.shape[axis] == local[key].shape[axis] // 4, shard.data.shape
        if kind == "stacked":
          assert out["weights"].sharding.is_fully_replicated
      print("ok")
  """)
  env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4",
         "JAX_PLATFORMS": "cpu"}
  proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                        cwd=os.path.dirname(os.path.dirname(__file__)), timeout=120)
  assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-3000:]


def test_global_batch_rejects_keys_without_a_sharding():
  import jax  # pylint: disable=g-import-not-at-top
  from ge2e_jax import train_step  # pylint: disable=g-import-not-at-top
  shardings = train_step.batch_sharding(train_step.make_mesh(jax.devices()[:1]))
  batch = {"audio": np.zeros((2, 3, 400), np.float32), "speaker": np.zeros(2, np.int32)}
  with pytest.raises(ValueError, match=r"keys \['audio', 'source', 'speaker'\]"):
    gb.global_batch({**batch, "source": np.int32(0)}, shardings)
  with pytest.raises(ValueError, match="cover \\['audio', 'speaker'\\]"):
    gb.global_batch({"speaker": batch["speaker"]}, shardings)
