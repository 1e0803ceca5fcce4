"""Verification on the user's own audio: per-window d-vectors, Embedder.score/verify, the
model card, and the evaluate (--trials, --speaker_dir, --calibrate, AS-norm), verify and
embed --windows CLIs on real espeak-ng speech (conftest's ``speaker_tree``).

References are float64 NumPy written here: windows cut by their frame definition and
encoded one at a time, cosines of d-vectors, AS-norm trial by trial.
"""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from ge2e_jax import audio, checkpoint, inference, model, model_card, optim, scoring, train_step
import cli_cases  # tests/cli_cases.py (pytest puts tests/ on sys.path)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = model.EncoderConfig(cells=16, projection=8)
NO_TRIM = inference.TrimOptions(enabled=False)
SPEAKERS = ("1001", "1002", "1003", "1004")  # trial speakers; 1005 and 1006 are the cohort


def run_module(module, *args):
  return subprocess.run([sys.executable, "-m", f"experiments.{module}", *map(os.fspath, args)],
                        cwd=REPO, capture_output=True, text=True, timeout=180,
                        env=dict(os.environ, PYTHONPATH=REPO))


def unit(x):
  x = np.asarray(x, np.float64)
  return x / np.linalg.norm(x, axis=-1, keepdims=True)


@pytest.fixture(scope="module")
def params():
  return train_step.init_params(jax.random.key(3), CONFIG)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, params):
  """A training workdir as the trainer leaves it (without evaluations): config + checkpoint 0."""
  path = tmp_path_factory.mktemp("workdir")
  checkpoint.write_config(os.fspath(path), {"model": model.config_to_dict(CONFIG)})
  ck = checkpoint.Checkpointer(os.fspath(path))
  ck.save(0, train_step.init_state(params, optim.make_optimizer()), {"step": 0})
  ck.close()
  return path


@pytest.fixture(scope="module")
def embedder(workdir):
  return inference.load(workdir)


@pytest.fixture(scope="module")
def files(speaker_tree):
  """{speaker: [its 3 good files]} of the trial and cohort speakers."""
  found = {}
  for speaker in SPEAKERS + ("1005", "1006"):
    folder = speaker_tree.root / speaker
    found[speaker] = sorted(
        os.fspath(p) for p in folder.rglob("*")
        if p.suffix in (".wav", ".flac") and p.relative_to(speaker_tree.root).as_posix()
        not in speaker_tree.bad_files)
    assert len(found[speaker]) == 3
  return found


@pytest.fixture(scope="module")
def dvectors(embedder, files):
  """{path: float64 d-vector}, each file embedded alone."""
  return {p: np.asarray(embedder.embed_files([p])[0], np.float64)
          for paths in files.values() for p in paths}


@pytest.fixture(scope="module")
def one_window(params):
  fn = jax.jit(lambda w: model.SpeakerEncoder(CONFIG).apply({"params": params["encoder"]},
                                                            w[None])[0])
  return lambda w: np.asarray(fn(np.asarray(w, np.float32)), np.float64)


def test_window_d_vectors_match_each_window_embedded_alone(params, one_window, files):
  """hop 40 frames on 160-frame windows, 0.7 s of silence before the speech: trimming is on,
  and each start time must point at the input samples its window was cut from."""
  speech = [audio.resample(*audio.read_audio(p), 16000) for p in files["1001"]]
  lead = 11200
  padded = np.concatenate([np.zeros(lead, np.float32), *speech, np.zeros(8000, np.float32)])
  window = 400 + 159 * 160
  embedder = inference.Embedder(CONFIG, params["encoder"], hop_frames=40, max_windows=4)
  result = embedder.embed_utterance(padded, 16000, return_windows=True)
  starts = np.round(result.starts * 16000).astype(int)
  assert starts[0] > lead - 1000 and len(result.windows) >= 3
  np.testing.assert_array_equal(np.diff(starts)[:-1], 40 * 160)
  assert starts[-1] + window <= len(padded)
  for start, got in zip(starts, result.windows):
    np.testing.assert_allclose(got, unit(one_window(padded[start:start + window])), atol=2e-6)
  np.testing.assert_allclose(result.d_vector, unit(unit(result.windows).sum(0)), atol=1e-6)
  np.testing.assert_allclose(result.d_vector, embedder.embed_utterance(padded, 16000), atol=1e-6)
  no_trim = inference.Embedder(CONFIG, params["encoder"], trim=NO_TRIM, hop_frames=40)
  assert no_trim.embed_utterance(padded, 16000, return_windows=True).starts[0] == 0.0


def test_score_is_the_cosine_with_the_speaker_mean_and_as_norm_matches_reference(
    embedder, files, dvectors):
  enrol = np.stack([dvectors[p] for p in files["1001"][:2]])
  tests = np.stack([dvectors[p] for p in files["1001"][2:] + files["1002"]])
  cohort = np.stack([dvectors[p] for s in ("1005", "1006") for p in files[s]])
  model_ = unit(unit(enrol).mean(0))
  raw = unit(tests) @ model_
  np.testing.assert_allclose(embedder.score(enrol, tests), raw, rtol=1e-6)
  assert embedder.score(enrol, tests[0]) == pytest.approx(raw[0], rel=1e-6)

  def stats(x, k=4):  # mean and population std of the k highest cohort cosines
    top = np.sort(unit(cohort) @ unit(x))[::-1][:k]
    return top.mean(), np.sqrt(np.mean((top - top.mean()) ** 2))

  (me, se) = stats(model_)
  want = [0.5 * ((s - me) / se + (s - stats(t)[0]) / stats(t)[1]) for s, t in zip(raw, tests)]
  np.testing.assert_allclose(embedder.score(enrol, tests, cohort=cohort, top_k=4), want,
                             rtol=1e-6)


def test_verify_uses_the_model_card_threshold_and_calibration(params, files, dvectors):
  card = model_card.new(7, 160, model.config_to_dict(CONFIG))
  result = {"eer": 0.1, "eer_threshold": 0.6, "min_dcf": 0.3, "far_target": 0.01,
            "far_threshold": 0.8, "trials": 40, "target_trials": 10}
  entry = model_card.evaluation(result, step=7, condition="dev", data="my list",
                                calibration={"a": 10.0, "b": -6.0, "p_target": 0.5})
  model_card.add_evaluation(card, entry, operating_point=True)
  embedder = inference.Embedder(CONFIG, params["encoder"], step=7, card=card)
  enrol, test = files["1001"][:2], files["1001"][2:] + files["1003"]
  results = embedder.verify(enrol, test)
  scores = unit(np.stack([dvectors[p] for p in test])) @ unit(
      unit(np.stack([dvectors[p] for p in enrol])).mean(0))
  for got, score in zip(results, scores):
    assert got["score"] == pytest.approx(score, abs=1e-6)
    assert got["threshold"] == 0.6 and got["accept"] == (got["score"] >= 0.6)
    assert got["llr"] == pytest.approx(10.0 * got["score"] - 6.0)
    assert got["threshold_from"].startswith("model card eer threshold")
    assert "measured on my list" in got["threshold_from"]
  assert embedder.verify(enrol, test[0], operating_point="far")["threshold"] == 0.8
  cohort = np.stack([dvectors[p] for s in ("1005", "1006") for p in files[s]])
  with pytest.raises(ValueError, match="no threshold for asnorm scores"):
    embedder.verify(enrol, test[0], cohort=cohort)
  asnorm = model_card.evaluation(dict(result, eer_threshold=2.5), step=7, condition="dev",
                                 data="my list", score_norm="asnorm",
                                 cohort={"source": "c.npz", "size": 6, "top_k": 4})
  model_card.add_evaluation(card, asnorm, operating_point=True)
  got = embedder.verify(enrol, test, cohort=cohort)
  want = embedder.score(np.stack([dvectors[p] for p in enrol]),
                        np.stack([dvectors[p] for p in test]), cohort=cohort, top_k=4)
  np.testing.assert_allclose([g["score"] for g in got], want, rtol=1e-5)
  assert {(g["threshold"], g["llr"], g["score_norm"]) for g in got} == {(2.5, None, "asnorm")}
  assert "AS-norm with cohort c.npz (top_k 4)" in got[0]["threshold_from"]
  bare = inference.Embedder(CONFIG, params["encoder"], source="mine")
  with pytest.raises(ValueError, match="mine: no threshold for none scores"):
    bare.verify(enrol, test)
  assert bare.verify(enrol, test[0], threshold=0.25)["threshold_from"] == "given"


@pytest.fixture(scope="module")
def trial_list(tmp_path_factory, files, speaker_tree):
  """Every test file of 1001..1004 against one enrolment file of each, paths relative to
  the tree, one comment and one blank line."""
  path = tmp_path_factory.mktemp("lists") / "dev.txt"
  lines = ["# label enrol test", ""]
  rel = lambda p: os.path.relpath(p, speaker_tree.root)
  for s in SPEAKERS:
    for t in SPEAKERS:
      lines += [f"{int(s == t)} {rel(files[s][0])} {rel(f)}" for f in files[t][1:]]
  path.write_text("\n".join(lines) + "\n")
  return path


def read_scores(output_dir):
  with open(output_dir / "scores.tsv") as f:
    next(f)
    return [line.rstrip("\n").split("\t") for line in f]


@pytest.fixture(scope="module")
def evaluations(workdir, trial_list, speaker_tree, files, tmp_path_factory):
  """The evaluate CLI, one process, in this order: {case: (output_dir, (status, stdout,
  stderr))}. "trials": the trial list with AS-norm over a cohort folder of 1005 and 1006;
  "calibrate": --speaker_dir --calibrate (writes the card's operating point)."""
  cohort = tmp_path_factory.mktemp("cohort")
  for s in ("1005", "1006"):
    for p in files[s]:
      os.symlink(p, cohort / f"{s}_{os.path.basename(p)}")
  out = {case: tmp_path_factory.mktemp(case) / "out" for case in ("trials", "calibrate")}
  cases = {"trials": [f"--model={workdir}", f"--trials={trial_list}",
                      f"--audio_root={speaker_tree.root}", "--score_norm=asnorm",
                      f"--cohort={cohort}", "--top_k=4", f"--output_dir={out['trials']}"],
           "calibrate": [f"--model={workdir}", f"--speaker_dir={speaker_tree.root}",
                         "--num_enroll=1", "--calibrate", "--skip_unreadable",
                         f"--output_dir={out['calibrate']}"]}
  results, _ = cli_cases.run("ge2e-evaluate", list(cases.values()))
  return {case: (out[case], result) for case, result in zip(cases, results)}


@pytest.mark.slow
def test_evaluate_trial_list_with_as_norm_matches_reference(workdir, files, dvectors,
                                                            evaluations):
  out, (code, stdout, stderr) = evaluations["trials"]
  assert code == 0, stderr[-3000:]
  assert stdout.startswith("EER ") and "asnorm scores" in stdout
  cohort_dv = np.stack([dvectors[p] for s in ("1005", "1006") for p in files[s]])

  def stats(x):
    top = np.sort(unit(cohort_dv) @ unit(x))[::-1][:4]
    return top.mean(), top.std()

  rows = read_scores(out)
  assert len(rows) == 4 * 4 * 2
  labels, scores = [], []
  for label, enrol, test, score in rows:
    e, t = dvectors[enrol], dvectors[test]
    raw = unit(e) @ unit(t)
    (me, se), (mt, st) = stats(e), stats(t)
    assert float(score) == pytest.approx(0.5 * ((raw - me) / se + (raw - mt) / st), abs=1e-4)
    labels.append(int(label))
    scores.append(float(score))
  summary = json.load(open(out / "eval.json"))
  assert summary["eer"] == pytest.approx(scoring.summary(scores, labels)["eer"], abs=1e-4)
  assert summary["trials"] == 32 and summary["target_trials"] == 8
  assert (out / "det.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  card = model_card.read(workdir)
  (entry,) = [e for e in card["evaluations"] if e["score_norm"] == "asnorm"]
  assert not entry["operating_point"] and entry["cohort"]["top_k"] == 4  # no --calibrate


def test_trial_list_bad_lines_are_reported_by_number(tmp_path):
  from experiments import trial_lists  # pylint: disable=g-import-not-at-top
  path = tmp_path / "bad.txt"
  path.write_text("# comment\n1 a.wav b.wav\n2 a.wav b.wav\nx\n\ntarget a.wav /abs/c.wav\n")
  with pytest.raises(ValueError) as err:
    trial_lists.read_trials(os.fspath(path))
  message = str(err.value)
  assert f"{path}: 2 line(s)" in message and f"{path}:3: '2 a.wav b.wav'" in message
  assert f"{path}:4: 'x'" in message and f"{path}:2:" not in message
  path.write_text("1 a.wav b.wav\nnontarget a.wav /abs/c.wav\n")
  assert trial_lists.read_trials(os.fspath(path), "root") == [
      trial_lists.Trial(1, "root/a.wav", "root/b.wav"),
      trial_lists.Trial(0, "root/a.wav", "/abs/c.wav")]


@pytest.mark.slow
def test_calibrated_speaker_folders_then_verify_cli(workdir, speaker_tree, files, dvectors,
                                                    evaluations):
  """evaluate --speaker_dir --calibrate writes the card's operating point; verify uses it."""
  out, (code, _, stderr) = evaluations["calibrate"]
  assert code == 0, stderr[-3000:]
  assert "left out 1 speaker(s)" in stderr and "tone" in stderr  # one file only
  assert "truncated" in stderr  # a skipped bad file, with its reason
  summary = json.load(open(out / "eval.json"))
  rows = read_scores(out)
  scores, labels = [float(r[3]) for r in rows], [int(r[0]) for r in rows]
  assert len(rows) == 6 * 2 * 6  # 6 speakers, 2 test files each, against all 6 speakers
  want = scoring.summary(scores, labels)
  for key in ("eer", "eer_threshold", "far_threshold", "min_dcf"):
    assert summary[key] == pytest.approx(want[key], abs=1e-5), key
  fit = scoring.fit_calibration(scores, labels)
  assert summary["calibration"]["a"] == pytest.approx(fit.a, rel=1e-3)
  card = model_card.read(workdir)
  point = model_card.operating_point(card, 0, "none")
  assert point["eer_threshold"] == summary["eer_threshold"] and point["calibration"]
  assert "speaker folders" in point["calibrated_on"] and "logistic calibration" in (
      point["calibrated_on"])

  enrol, tests = files["1002"][:2], [files["1002"][2], files["1003"][0]]
  broken = speaker_tree.root / "1002" / "21" / "cut_short.wav"
  proc = run_module("verify", f"--model={workdir}", "--enroll", *enrol, "--test", *tests,
                    broken)
  assert proc.returncode == 1, proc.stderr[-3000:]
  assert "model card eer threshold" in proc.stderr and "speaker folders" in proc.stderr
  lines = [json.loads(line) for line in proc.stdout.splitlines()]
  assert [line["test"] for line in lines] == tests + [os.fspath(broken)]
  assert "truncated" in lines[2]["error"]
  speaker = unit(unit(np.stack([dvectors[p] for p in enrol])).mean(0))
  a, b = point["calibration"]["a"], point["calibration"]["b"]
  for line, path in zip(lines, tests):
    assert line["score"] == pytest.approx(unit(dvectors[path]) @ speaker, abs=1e-5)
    assert line["threshold"] == point["eer_threshold"]
    assert line["accept"] == (line["score"] >= line["threshold"])
    assert line["llr"] == pytest.approx(a * line["score"] + b, abs=1e-6)


@pytest.mark.slow
def test_embed_cli_windows(workdir, files, params, tmp_path):
  out = tmp_path / "w.npz"
  paths = files["1001"][:2]
  proc = run_module("embed", f"--model={workdir}", f"--output={out}", "--windows",
                    "--hop_frames=40", *paths)
  assert proc.returncode == 0, proc.stderr[-3000:]
  embedder = inference.load(workdir, hop_frames=40)
  with np.load(out) as npz:
    for row, path in enumerate(paths):
      wav, sr = audio.read_audio(path)
      want = embedder.embed_utterance(wav, sr, return_windows=True)
      mine = npz["window_file"] == row
      np.testing.assert_allclose(npz["window_embeddings"][mine], want.windows, atol=1e-6)
      np.testing.assert_allclose(npz["window_starts"][mine], want.starts)
      np.testing.assert_allclose(npz["embeddings"][row], want.d_vector, atol=1e-6)
    assert npz["window_seconds"] == pytest.approx(1.615)


