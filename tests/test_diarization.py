"""ge2e_jax.diarization (windows -> segments -> RTTM) and the diarize CLI on real espeak-ng speech.

References written here: the nearest window centre by brute force, an energy VAD frame by
frame, and segments scored against the known turns of a conversation.
"""

import os

import jax
import numpy as np
import pytest
import soundfile as sf

from ge2e_jax import audio, checkpoint, der, diarization, inference, model, optim, train_step
from ge2e_jax.diarization import Segment
import cli_cases  # tests/cli_cases.py (pytest puts tests/ on sys.path)

CONFIG = model.EncoderConfig(cells=16, projection=8)
FRAME = 160


def test_frame_labels_take_the_nearest_window_centre():
  rng = np.random.default_rng(0)
  window_s, starts = 1.6, np.minimum(np.arange(12) * 0.4, 4.3)  # end-aligned last window
  labels = rng.integers(0, 3, size=len(starts))
  frames = 700
  got = diarization.frame_labels(starts, window_s, labels, frames)
  centres = starts + window_s / 2
  for f in range(frames):
    t = (f + 0.5) * 0.01
    if t < starts.min() or t > starts.max() + window_s:
      assert got[f] == -1
    else:
      distance = np.abs(centres - t)
      assert labels[np.flatnonzero(distance == distance.min())].tolist().count(got[f])


def test_speech_frames_find_bursts_and_bridge_short_pauses():
  rng = np.random.default_rng(1)
  wav = np.zeros(16000 * 6, np.float32)
  bursts = [(0.5, 1.5), (1.8, 2.5), (3.5, 4.0)]  # 0.3 s pause (bridged), 1 s pause (kept)
  for s, e in bursts:
    wav[int(s * 16000):int(e * 16000)] = 0.3 * rng.standard_normal(int((e - s) * 16000))
  wav[int(5.0 * 16000):] = 1e-5  # 90 dB below the bursts: not speech
  got = diarization.speech_frames(wav, top_db=40.0, min_pause_s=0.5)
  expected = np.zeros(600, bool)
  for s, e in [(0.5, 2.5), (3.5, 4.0)]:
    expected[int(round(s * 100)):int(round(e * 100))] = True
  np.testing.assert_array_equal(got, expected)
  assert not diarization.speech_frames(np.zeros(1600, np.float32), 40.0, 0.5).any()


def synthetic_windows(turns, duration, window_s=1.6, hop_s=0.4, noise=0.15, seed=0):
  """Windows whose d-vector is its majority speaker's direction plus noise; speech = turns."""
  rng = np.random.default_rng(seed)
  speakers = sorted({spk for _, _, spk in turns})
  directions = {s: rng.normal(size=16) for s in speakers}
  starts = np.arange(0.0, duration - window_s + 1e-9, hop_s)
  t = (np.arange(int(duration * 100)) + 0.5) / 100
  owner = np.full(len(t), "", object)
  for s, e, spk in turns:
    owner[(t >= s) & (t < e)] = spk
  dvectors = []
  for start in starts:
    inside = owner[(t >= start) & (t < start + window_s) & (owner != "")]
    values, counts = np.unique(inside.astype(str), return_counts=True)
    dvectors.append(directions[values[counts.argmax()]] + noise * rng.normal(size=16))
  return diarization.Windows(np.array(dvectors), starts, window_s, owner != "")


TURNS = [(0.5, 5.0, "A"), (5.3, 9.0, "B"), (9.4, 14.0, "A"), (14.2, 19.5, "C"), (19.8, 24.0, "B")]


@pytest.mark.parametrize("num_speakers", [3, None])
def test_segments_follow_the_turns(num_speakers):
  windows = synthetic_windows(TURNS, 25.0)
  options = diarization.DiarizationOptions(
      clustering=diarization.ClusteringOptions(p_percentile=0.5))
  got = diarization.segments(windows, num_speakers, options)
  assert [s.speaker for s in got][:2] == ["spk0", "spk1"]
  assert len({s.speaker for s in got}) == 3
  result = der.diarization_error_rate([Segment(*t) for t in TURNS], got, collar=0.25)
  assert result.der < 0.03, result  # window-grid boundaries only (<= half a hop + a frame)
  assert result.mapping == {"A": "spk0", "B": "spk1", "C": "spk2"}


def test_rttm_lines_and_read_back():
  segments = [Segment(0.31, 2.47, "spk0"), Segment(2.47, 3.0, "spk 1")]
  lines = diarization.rttm_lines(segments, "my meeting")
  assert lines == ["SPEAKER my_meeting 1 0.310 2.160 <NA> <NA> spk0 <NA> <NA>",
                   "SPEAKER my_meeting 1 2.470 0.530 <NA> <NA> spk_1 <NA> <NA>"]
  back = der.read_rttm(["SPKR-INFO x", *lines, "SPEAKER other 1 0 1 <NA> <NA> z <NA> <NA>"])
  assert back == {"my_meeting": [Segment(0.31, pytest.approx(2.47), "spk0"),
                                 Segment(2.47, 3.0, "spk_1")],
                  "other": [Segment(0.0, 1.0, "z")]}
  with pytest.raises(ValueError, match="RTTM line 1"):
    der.read_rttm(["SPEAKER f 1 zero 1 <NA> <NA> a <NA> <NA>"])


# ---------------------------------------------------------------- real audio, a tiny model
@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
  """A training workdir as the trainer leaves it: config + checkpoint 0 of a tiny encoder."""
  path = tmp_path_factory.mktemp("workdir")
  params = train_step.init_params(jax.random.key(3), CONFIG)
  checkpoint.write_config(os.fspath(path), {"model": model.config_to_dict(CONFIG)})
  ck = checkpoint.Checkpointer(os.fspath(path))
  ck.save(0, train_step.init_state(params, optim.make_optimizer()), {"step": 0})
  ck.close()
  return path


@pytest.fixture(scope="module")
def conversation(speaker_tree, tmp_path_factory):
  """(wav path, reference turns): two espeak-ng voices taking turns, 0.3 s apart, 44.1 kHz."""
  pieces, turns, t = [np.zeros(4800, np.float32)], [], 0.3
  for n in range(4):
    speaker = ("1001", "1002")[n % 2]
    path = sorted((speaker_tree.root / speaker).rglob(f"*-{n // 2:04d}.*"))[0]
    wav, _ = audio.trim_silence(audio.to_16k_mono(*audio.read_audio_channels(path)), 16000)
    pieces += [wav, np.zeros(4800, np.float32)]
    turns.append(Segment(t, t + len(wav) / 16000, speaker))
    t += len(wav) / 16000 + 0.3
  path = tmp_path_factory.mktemp("conversation") / "two voices.wav"
  sf.write(path, audio.resample(np.concatenate(pieces), 16000, 44100), 44100, subtype="PCM_16")
  return path, turns


def test_diarize_api_on_real_speech(workdir, conversation):
  """Plumbing on real audio (the untrained encoder cannot tell the voices apart): windows of
  the whole input, every speech frame labelled once, the count obeyed."""
  path, turns = conversation
  embedder = inference.load(workdir)
  wav, rate = audio.read_audio_channels(path)
  options = diarization.DiarizationOptions(hop_frames=20)
  windows = diarization.window_dvectors(embedder, wav, rate, options)
  assert windows.window_s == pytest.approx(embedder.window_samples / 16000)
  assert np.all(np.diff(windows.starts) > 0) and windows.starts[0] >= 0.2  # trimmed lead
  segments = diarization.diarize(embedder, wav, rate, num_speakers=2, options=options)
  assert {s.speaker for s in segments} == {"spk0", "spk1"}
  assert all(a.end <= b.start for a, b in zip(segments, segments[1:]))  # no overlaps
  speech = sum(s.end - s.start for s in segments)
  assert speech == pytest.approx(windows.speech.sum() * 0.01, abs=0.02)
  result = der.diarization_error_rate(turns, segments, collar=0.25)
  assert result.missed + result.false_alarm < 0.1 * result.reference  # the VAD finds the turns


@pytest.mark.slow
def test_cli_writes_rttm_and_refuses_bad_input(workdir, conversation, tmp_path):
  path, turns = conversation
  out = tmp_path / "out" / "dia.rttm"
  before = path.read_bytes()
  refused = [([f"--model={workdir}", f"--output={path}", path], "is also an input"),
             ([f"--model={tmp_path / 'none'}", path], "none"),
             ([f"--model={workdir}", "--num_speakers=0", path], "--num_speakers"),
             ([f"--model={workdir}", f"--output={out}", path, tmp_path / "missing.wav"],
              "missing.wav")]
  # One process: the run that writes the RTTM, then the refused ones.
  (done, *results), _ = cli_cases.run("ge2e-diarize", [
      [f"--model={workdir}", "--num_speakers=2", f"--output={out}", path],
      *[args for args, _ in refused]])
  code, _, stderr = done
  assert code == 0, stderr
  lines = out.read_text().splitlines()
  segments = der.read_rttm(lines)["two_voices"]
  assert len(segments) == len(lines) >= 2 and {s.speaker for s in segments} == {"spk0", "spk1"}
  assert segments[0].start >= 0.2 and segments[-1].end <= turns[-1].end + 0.4
  assert "2 speaker(s)" in stderr

  for (code, _, stderr), (_, needle) in zip(results, refused):
    assert code != 0
    last = stderr.strip().splitlines()[-1]  # absl's INFO log lines come before it
    assert "Traceback" not in stderr and last.startswith("diarize: ") and needle in last, stderr
  assert path.read_bytes() == before  # the input was not overwritten
  assert out.read_text().splitlines() == lines  # the earlier output was not replaced
