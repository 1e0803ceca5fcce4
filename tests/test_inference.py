"""Sliding-window inference and the embed CLI against independent NumPy references.

The references cut windows by their frame definition (160 frames, hop 80, an end-aligned
last window, ``np.resize`` repetition for short input) and run the encoder on one window
at a time; averaging and normalisation are float64 NumPy.
"""

import os
import subprocess

import jax
import numpy as np
import pytest
import soundfile as sf

from ge2e_jax import audio, checkpoint, features, inference, model, optim, train_step
import cli_cases  # tests/cli_cases.py (pytest puts tests/ on sys.path)

CONFIG = model.EncoderConfig(cells=16, projection=8)
WINDOW = 400 + 159 * 160  # samples of 160 frames
NO_TRIM = inference.TrimOptions(enabled=False)


def espeak(text: str, voice: str, path) -> np.ndarray:
  """Real synthetic speech, resampled to 16 kHz float32."""
  subprocess.run(["espeak-ng", "-v", voice, "-w", os.fspath(path), text], check=True)
  wav, sr = sf.read(path, dtype="float32")
  return audio.resample(wav, sr, 16000)


def make_workdir(path, config, params):
  """A training workdir as the trainer leaves it: config.json + one orbax checkpoint."""
  checkpoint.write_config(os.fspath(path), {"model": model.config_to_dict(config), "seed": 0})
  ck = checkpoint.Checkpointer(os.fspath(path))
  ck.save(0, train_step.init_state(params, optim.make_optimizer()), {"step": 0})
  ck.close()


def ref_windows(wav: np.ndarray, window_frames: int = 160) -> np.ndarray:
  """(windows, window samples) by the frame definition, independent of window_indices."""
  window = 400 + (window_frames - 1) * 160
  if len(wav) < window:
    return np.resize(wav, window)[None]  # np.resize repeats the array cyclically
  frames = 1 + (len(wav) - 400) // 160
  starts = list(range(0, frames - window_frames + 1, window_frames // 2))
  if starts[-1] != frames - window_frames:
    starts.append(frames - window_frames)
  return np.stack([wav[s * 160:s * 160 + window] for s in starts])


def unit(x):
  x = np.asarray(x, np.float64)
  return x / np.linalg.norm(x, axis=-1, keepdims=True)


@pytest.fixture(scope="module")
def params():
  return train_step.init_params(jax.random.key(0), CONFIG)


@pytest.fixture(scope="module")
def embedder(params):
  # max_windows=8: the test batches span two chunks and both buckets (4 and 8).
  return inference.Embedder(CONFIG, params["encoder"], trim=NO_TRIM, max_windows=8)


@pytest.fixture(scope="module")
def one_window(params):
  """The encoder on a single (WINDOW,) window, jitted once."""
  fn = jax.jit(lambda w: model.SpeakerEncoder(CONFIG).apply({"params": params["encoder"]},
                                                            w[None])[0])
  return lambda w: np.asarray(fn(np.asarray(w, np.float32)), np.float64)


def ref_embedding(one_window, wav):
  return unit(np.mean([unit(one_window(w)) for w in ref_windows(wav)], axis=0))


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
  tmp = tmp_path_factory.mktemp("speech")
  lines = {"long": ("the quick brown fox jumps over the lazy dog near the river bank", "en-us+m3"),
           "medium": ("please call stella and ask her", "en-us+m3"),
           "short": ("yes", "en-us+m3"),
           "other": ("a quiet river runs by the old mill", "en-gb+f2")}
  return {k: espeak(text, voice, tmp / f"{k}.wav") for k, (text, voice) in lines.items()}


@pytest.mark.parametrize("samples", [400, 1000, WINDOW - 1, WINDOW, WINDOW + 159, WINDOW + 160,
                                     WINDOW + 80 * 160, WINDOW + 80 * 160 + 160, 100_000])
def test_window_split_matches_frame_definition(samples):
  wav = np.arange(samples, dtype=np.float64)
  expected = ref_windows(wav)
  np.testing.assert_array_equal(wav[inference.window_indices(samples)], expected)
  assert inference.num_windows(samples) == len(expected)


@pytest.mark.parametrize("samples", [400, 13039, 13040, 13040 + 40 * 160, 13040 + 41 * 160,
                                     50_000])
def test_td_sized_windows_match_frame_definition(samples):
  """80-frame windows (a TD model's evaluation setting) hop by 40 frames."""
  wav = np.arange(samples, dtype=np.float64)
  expected = ref_windows(wav, window_frames=80)
  np.testing.assert_array_equal(wav[inference.window_indices(samples, window_frames=80)],
                                expected)
  assert inference.num_windows(samples, 80) == len(expected)


def test_window_logmel_is_a_slice_of_the_utterance_logmel(speech):
  wav = speech["long"]
  whole = np.asarray(features.log_mel(wav))
  second = np.asarray(features.log_mel(wav[inference.window_indices(len(wav))[1]]))
  np.testing.assert_allclose(second, whole[80:240], atol=1e-4)


def test_batched_utterances_match_per_window_reference(embedder, one_window, speech):
  wavs = [speech["long"], speech["short"], speech["medium"]]
  assert [inference.num_windows(len(w)) for w in wavs] == [4, 1, 2]  # 7 windows: chunks 7 -> 8
  got = embedder.embed_utterances(wavs + [speech["other"]], 16000)  # 11 windows: 8 + 3 (-> 4)
  assert got.dtype == np.float32 and got.shape == (4, CONFIG.projection)
  np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-6)
  for wav, row in zip(wavs + [speech["other"]], got):
    np.testing.assert_allclose(row, ref_embedding(one_window, wav), atol=1e-5)
    np.testing.assert_allclose(embedder.embed_utterance(wav, 16000), row, atol=1e-6)
  assert np.abs(got[0] - got[3]).max() > 0.05  # different utterances differ


def test_short_utterance_is_one_repeat_padded_window(embedder, one_window, speech):
  wav = speech["short"]
  assert len(wav) < WINDOW
  tiled = np.concatenate([wav] * (WINDOW // len(wav) + 1))[:WINDOW]
  np.testing.assert_allclose(embedder.embed_utterance(wav, 16000), unit(one_window(tiled)),
                             atol=1e-5)


def test_overlap_padded_rule_ends_a_short_utterance_window_after_zeros(params, one_window,
                                                                        speech, tmp_path):
  """Traced (the export's function) and host Embedder alike, also as a load() override of a
  workdir's "overlap" model; long utterances as "overlap"."""
  config = model.EncoderConfig(cells=16, projection=8, window_rule="overlap_padded")
  make_workdir(tmp_path, CONFIG, params)
  padded = inference.load(tmp_path, "latest", window_rule="overlap_padded", trim=NO_TRIM)
  assert padded.config == config
  traced = jax.export.export(jax.jit(
      lambda w: inference.embed_waveforms(config, params["encoder"], w)))(
          jax.ShapeDtypeStruct(jax.export.symbolic_shape("b, s"), np.float32))
  wav = speech["short"]
  want = unit(one_window(np.concatenate([np.zeros(WINDOW - len(wav)), wav])))
  np.testing.assert_allclose(padded.embed_utterance(wav, 16000), want, atol=1e-5)
  np.testing.assert_allclose(np.asarray(traced.call(wav[None]))[0], want, atol=1e-5)
  for name in ("long", "medium"):
    np.testing.assert_allclose(padded.embed_utterance(speech[name], 16000),
                               ref_embedding(one_window, speech[name]), atol=1e-5)


def test_embed_speaker_is_normalised_mean_of_utterances(embedder, speech):
  wavs = [speech["long"], speech["medium"], speech["short"]]
  rows = np.stack([embedder.embed_utterance(w, 16000) for w in wavs]).astype(np.float64)
  got = embedder.embed_speaker(wavs, 16000)
  assert got.dtype == np.float32 and got.shape == (CONFIG.projection,)
  np.testing.assert_allclose(got, unit(rows.mean(0)), atol=1e-6)


def test_44k_stereo_file_gives_nearly_the_16k_mono_d_vector(params, speech, tmp_path):
  """Polyphase 16k -> 44.1k -> 16k loses only the band edge; the d-vector barely moves.

  Bound: the two versions must be >= 20x closer to each other than two different
  utterances of the same voice, and their cosine >= 0.995 (measured ~0.9999).
  """
  embedder = inference.Embedder(CONFIG, params["encoder"])  # default: VAD trimming on
  wav = speech["long"]
  wav44 = audio.resample(wav, 16000, 44100)
  sf.write(tmp_path / "mono16.wav", wav, 16000, subtype="FLOAT")
  sf.write(tmp_path / "stereo44.wav", np.stack([wav44, 0.5 * wav44], 1), 44100, subtype="FLOAT")
  sf.write(tmp_path / "medium.wav", speech["medium"], 16000, subtype="FLOAT")
  mono, stereo, other = embedder.embed_files(
      [tmp_path / "mono16.wav", tmp_path / "stereo44.wav", tmp_path / "medium.wav"])
  assert float(mono @ stereo) >= 0.995
  assert np.linalg.norm(mono - stereo) * 20 <= np.linalg.norm(mono - other)


def test_trimming_removes_added_silence(params, speech):
  trimmed = inference.Embedder(CONFIG, params["encoder"])
  untrimmed = inference.Embedder(CONFIG, params["encoder"], trim=NO_TRIM)
  wav = speech["medium"]
  padded = np.concatenate([np.zeros(16000, np.float32), wav, np.zeros(16000, np.float32)])
  assert len(trimmed.prepare(padded, 16000)) < len(wav) + 2 * 640
  plain = trimmed.embed_utterance(wav, 16000)
  assert float(plain @ trimmed.embed_utterance(padded, 16000)) >= 0.999
  assert float(plain @ untrimmed.embed_utterance(padded, 16000)) < 0.99


@pytest.mark.parametrize("wav, words", [
    (np.zeros(8000, np.int16), "float audio"),
    (np.full(8000, np.nan, np.float32), "NaN"),
    (np.zeros(8000, np.float32), "after silence trimming"),
    (np.ones(300, np.float32), "one 25 ms frame"),
    (np.zeros((2, 3, 4), np.float32), "(samples, channels)"),
])
def test_bad_waveforms_are_refused_with_a_reason(params, wav, words):
  embedder = inference.Embedder(CONFIG, params["encoder"])
  with pytest.raises(ValueError, match=words.replace("(", r"\(").replace(")", r"\)")):
    embedder.embed_utterance(wav, 16000)


def test_params_of_another_config_are_refused(params):
  with pytest.raises(ValueError, match="do not match its model config"):
    inference.Embedder(model.EncoderConfig(cells=16, projection=6), params["encoder"])


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, params):
  path = tmp_path_factory.mktemp("workdir")
  make_workdir(path, CONFIG, params)
  return path


def test_load_workdir_embeds_like_its_params(workdir, embedder, speech):
  loaded = inference.load(workdir, trim=NO_TRIM)
  assert loaded.config == CONFIG
  wavs = [speech["long"], speech["short"]]
  np.testing.assert_array_equal(loaded.embed_utterances(wavs, 16000),
                                embedder.embed_utterances(wavs, 16000))


def test_load_names_the_path_and_what_it_expected(tmp_path):
  with pytest.raises(FileNotFoundError, match="nowhere is not a directory; expected a training"):
    inference.load(tmp_path / "nowhere")
  (tmp_path / "notes.txt").write_text("x")
  with pytest.raises(FileNotFoundError, match=r"holds \['notes.txt'\]; expected a training"):
    inference.load(tmp_path)
  checkpoint.write_config(os.fspath(tmp_path), {"seed": 1})
  (tmp_path / "checkpoints").mkdir()
  with pytest.raises(ValueError, match="config.json has no 'model' entry"):
    inference.load(tmp_path)


@pytest.fixture(scope="module")
def audio_folder(tmp_path_factory, speech):
  """folder/{a.wav, sub/b.flac, sub/c.ogg, sub/notes.txt} and a broken file beside it."""
  root = tmp_path_factory.mktemp("cli")
  (root / "folder" / "sub").mkdir(parents=True)
  sf.write(root / "folder" / "a.wav", speech["long"], 16000, subtype="PCM_16")
  sf.write(root / "folder" / "sub" / "b.flac", speech["medium"], 16000, subtype="PCM_16")
  sf.write(root / "folder" / "sub" / "c.ogg", speech["other"], 16000, format="OGG",
           subtype="VORBIS")
  (root / "folder" / "sub" / "notes.txt").write_text("not audio")
  (root / "broken.wav").write_bytes((root / "folder" / "a.wav").read_bytes()[:1000])
  return root


@pytest.fixture(scope="module")
def embed_runs(workdir, audio_folder, tmp_path_factory):
  """The embed CLI's cases, one process: {case: (output folder, (status, stdout, stderr))}.
  "writes": a folder and a file; "bad_file": a truncated file over an earlier output;
  "skip": --skip_unreadable; "help"."""
  out = {case: tmp_path_factory.mktemp(case) for case in ("writes", "bad_file", "skip")}
  np.savez(out["bad_file"] / "d.npz", embeddings=np.zeros((1, 2)))  # an earlier run's output
  cases = {
      "writes": [f"--model={workdir}", f"--output={out['writes'] / 'd.npz'}",
                 audio_folder / "folder", audio_folder / "folder" / "a.wav"],
      "bad_file": [f"--model={workdir}", f"--output={out['bad_file'] / 'd.npz'}",
                   audio_folder / "folder", audio_folder / "broken.wav"],
      "skip": [f"--model={workdir}", f"--output={out['skip'] / 'd.npz'}", "--skip_unreadable",
               audio_folder / "broken.wav", audio_folder / "folder" / "sub"],
      "help": ["--help"]}
  previous = (out["bad_file"] / "d.npz").read_bytes()
  results, _ = cli_cases.run("ge2e-embed", list(cases.values()))
  return {case: (out.get(case), result) for case, result in zip(cases, results)}, previous


@pytest.mark.slow
def test_embed_cli_writes_unit_rows_for_every_file(workdir, audio_folder, embed_runs):
  folder, (code, _, stderr) = embed_runs[0]["writes"]
  assert code == 0, stderr
  with np.load(folder / "d.npz") as npz:
    paths, emb = npz["paths"], npz["embeddings"]
    assert {"paths", "embeddings", "skipped", "skipped_reasons"} <= set(npz.files)
    assert npz["skipped"].shape == (0,)
  names = [os.path.relpath(p, audio_folder) for p in paths]
  assert names == ["folder/a.wav", "folder/sub/b.flac", "folder/sub/c.ogg", "folder/a.wav"]
  assert emb.dtype == np.float32 and emb.shape == (4, CONFIG.projection)
  np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-6)
  np.testing.assert_allclose(emb, inference.load(workdir).embed_files(paths), atol=1e-6)


@pytest.mark.slow
def test_embed_cli_bad_file_fails_cleanly_and_keeps_old_output(audio_folder, embed_runs):
  (folder, (code, _, stderr)), previous = embed_runs[0]["bad_file"], embed_runs[1]
  assert code == 1
  assert f"cannot embed {audio_folder / 'broken.wav'}: truncated" in stderr
  assert "Traceback" not in stderr
  assert (folder / "d.npz").read_bytes() == previous
  assert os.listdir(folder) == ["d.npz"]  # no temporary file left behind


@pytest.mark.slow
def test_embed_cli_can_skip_and_report_bad_files(audio_folder, embed_runs):
  folder, (code, _, stderr) = embed_runs[0]["skip"]
  assert code == 0, stderr
  assert f"{audio_folder / 'broken.wav'}: truncated" in stderr
  with np.load(folder / "d.npz") as npz:
    assert [os.path.basename(p) for p in npz["paths"]] == ["b.flac", "c.ogg"]
    assert list(npz["skipped"]) == [os.fspath(audio_folder / "broken.wav")]
    assert "truncated" in npz["skipped_reasons"][0]
    assert npz["embeddings"].shape == (2, CONFIG.projection)


@pytest.mark.slow
def test_embed_cli_help(embed_runs):
  _, (_, stdout, stderr) = embed_runs[0]["help"]
  assert "Embed audio files into d-vectors" in stdout
  assert "--output" in stdout and "--skip_unreadable" in stdout
  assert "Traceback" not in stderr
