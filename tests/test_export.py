"""experiments.export: the SavedModel (run by plain TensorFlow in a subprocess that cannot
import jax or ge2e_jax), the jax.export artifact and the params must all give the
d-vectors of ge2e_jax.inference."""

import json
import os
import stat
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest
import soundfile as sf

from ge2e_jax import audio, checkpoint, export_io, inference, model, model_card, optim, train_step
import cli_cases  # tests/cli_cases.py (pytest puts tests/ on sys.path)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = model.EncoderConfig(cells=16, projection=8)
PARITY = 1e-5
# Lengths (samples at 16 kHz): repeat-padded short, exactly one window, one window plus a
# partial hop (end-aligned second window), three windows (the last end-aligned).
LENGTHS = (6000, 25840, 30000, 50000)
UMASK = 0o027  # group may read, others not: the export's modes must follow it

PLAIN_TF_SCRIPT = textwrap.dedent("""
    import json, sys

    class NoJax:  # this process may use TensorFlow only
      def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("jax", "jaxlib", "flax", "ge2e_jax"):
          raise ImportError(f"{name} must not be needed to serve the SavedModel")

    sys.meta_path.insert(0, NoJax())
    import numpy as np
    import tensorflow as tf

    saved_model, inputs, outputs = sys.argv[1:]
    serve = tf.saved_model.load(saved_model).signatures["serving_default"]
    args, kwargs = serve.structured_input_signature
    spec = kwargs["waveform"]
    results = {k: serve(waveform=tf.constant(v))["d_vectors"].numpy()
               for k, v in np.load(inputs).items()}
    np.savez(outputs, **results)
    print(json.dumps({"input": [list(kwargs), spec.shape.as_list(), spec.dtype.name],
                      "output": {k: [v.shape.as_list(), v.dtype.name]
                                 for k, v in serve.structured_outputs.items()}}))
""")


def run_export(*args):
  return subprocess.run([sys.executable, "-m", "experiments.export", *map(os.fspath, args)],
                        cwd=REPO, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
  path = tmp_path_factory.mktemp("workdir")
  params = train_step.init_params(jax.random.key(1), CONFIG)
  checkpoint.write_config(os.fspath(path), {"model": model.config_to_dict(CONFIG)})
  ck = checkpoint.Checkpointer(os.fspath(path))
  ck.save(0, train_step.init_state(params, optim.make_optimizer()), {"step": 0})
  ck.close()
  for step in (0, 5):  # held-out evaluations as the trainer records them; step 0 is exported
    model_card.record_training_eval(
        os.fspath(path), {"model": model.config_to_dict(CONFIG), "eval": {"window_frames": 160},
                          "data": {"sources": "ok:synthetic_voices/td"}}, step,
        {"eer": 0.2, "threshold": 0.3 + step, "far_threshold": 0.9, "far_target": 0.01,
         "min_dcf": 0.5, "trials": 40, "target_trials": 10}, "test split")
  return path


@pytest.fixture(scope="module")
def export_dir(workdir):
  umask = os.umask(UMASK)  # the export subprocess inherits it
  try:
    result = run_export(f"--workdir={workdir}")
  finally:
    os.umask(umask)
  assert result.returncode == 0, result.stderr[-3000:]
  return workdir / "export"


@pytest.fixture(scope="module")
def waveforms(tmp_path_factory):
  """{name: (2, samples)} float32 batches: crops of two espeak-ng voices at 16 kHz."""
  tmp = tmp_path_factory.mktemp("speech")
  lines = [("the quick brown fox jumps over the lazy dog near the river bank", "en-us+m3"),
           ("a quiet river runs by the old mill while seven children play", "en-gb+f2")]
  voices = []
  for i, (text, voice) in enumerate(lines):
    subprocess.run(["espeak-ng", "-v", voice, "-w", tmp / f"{i}.wav", text], check=True)
    wav, sr = sf.read(tmp / f"{i}.wav", dtype="float32")
    voices.append(audio.resample(wav, sr, 16000))
  assert min(map(len, voices)) >= 2000 + max(LENGTHS)
  return {f"len{n}": np.stack([v[2000:2000 + n] for v in voices]) for n in LENGTHS}


@pytest.fixture(scope="module")
def expected(workdir, waveforms):
  """ge2e_jax.inference on the same (untrimmed) waveforms, one utterance per row."""
  embedder = inference.load(workdir, trim=inference.TrimOptions(enabled=False))
  return {k: embedder.embed_utterances(list(v), 16000) for k, v in waveforms.items()}


def test_export_dir_layout(export_dir):
  for name in ("config.json", "params", "d_vector.jax_export", "saved_model/saved_model.pb"):
    assert os.path.exists(export_dir / name), name
  assert [p for p in os.listdir(export_dir.parent) if "tmp" in p] == []
  with open(export_dir / "config.json") as f:
    values = json.load(f)
  assert model.config_from_dict(values["model"]) == CONFIG
  assert values["export"]["platforms"] == ["cpu", "cuda"]
  assert values["export"]["window_frames"] == 160 and values["export"]["hop_frames"] == 80
  with open(export_dir / export_io.CHECKSUMS_FILE) as f:  # written last, lists every file
    listed = set(json.load(f)["files"])
  assert listed == {os.path.relpath(os.path.join(r, f), export_dir)
                    for r, _, fs in os.walk(export_dir) for f in fs} - {"checksums.json"}
  assert export_io.verify_checksums(export_dir)


def test_export_holds_the_model_card_of_its_step(export_dir):
  card = model_card.read(export_dir)
  assert card["model"]["step"] == 0 and card["model"]["window_frames"] == 160
  assert card["training"]["corpus"] == "ok:synthetic_voices/td" and "jax" in card["versions"]
  (entry,) = card["evaluations"]
  assert entry["step"] == 0 and entry["eer_threshold"] == 0.3 and entry["data"] == "test split"
  assert "measured on test split" in entry["calibrated_on"]
  threshold, source = inference.load(export_dir).threshold()
  assert threshold == 0.3 and "test split" in source


def test_inference_loads_the_export_dir_like_the_workdir(workdir, export_dir, waveforms):
  from_export = inference.load(export_dir, trim=inference.TrimOptions(enabled=False))
  from_workdir = inference.load(workdir, trim=inference.TrimOptions(enabled=False))
  wavs = list(waveforms["len30000"]) + list(waveforms["len6000"])
  np.testing.assert_array_equal(from_export.embed_utterances(wavs, 16000),
                                from_workdir.embed_utterances(wavs, 16000))


def test_jax_export_artifact_matches_inference(export_dir, waveforms, expected):
  serve = export_io.load_jax_export(export_dir)
  for name, batch in waveforms.items():
    got = serve(batch)
    assert got.shape == (2, CONFIG.projection) and got.dtype == np.float32
    np.testing.assert_allclose(got, expected[name], atol=PARITY, err_msg=name)
  np.testing.assert_allclose(serve(waveforms["len50000"][1:]), expected["len50000"][1:],
                             atol=PARITY)  # another batch size, same artifact


@pytest.mark.slow
def test_saved_model_in_plain_tensorflow_matches_inference(export_dir, waveforms, expected,
                                                           tmp_path):
  np.savez(tmp_path / "in.npz", **waveforms)
  env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
  result = subprocess.run(
      [sys.executable, "-c", PLAIN_TF_SCRIPT, export_dir / "saved_model", tmp_path / "in.npz",
       tmp_path / "out.npz"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  signature = json.loads(result.stdout.strip().splitlines()[-1])
  assert signature == {"input": [["waveform"], [None, None], "float32"],
                       "output": {"d_vectors": [[None, CONFIG.projection], "float32"]}}
  with np.load(tmp_path / "out.npz") as got:
    for name in waveforms:
      np.testing.assert_allclose(got[name], expected[name], atol=PARITY, err_msg=name)


@pytest.fixture(scope="module")
def refusals(workdir, export_dir, tmp_path_factory):
  """The export CLI's refusals and --help, one process: {case: (status, stdout, stderr)};
  "kept": the training run's checkpoints and config.json before them."""
  nowhere = tmp_path_factory.mktemp("missing") / "nowhere"
  kept = sorted(os.listdir(workdir / "checkpoints")), (workdir / "config.json").read_bytes()
  cases = {"again": [f"--workdir={export_dir.parent}"], "missing": [f"--workdir={nowhere}"],
           "into_the_run": [f"--workdir={workdir}", f"--output={workdir}", "--overwrite"],
           "help": ["--help"]}
  results, _ = cli_cases.run("ge2e-export", list(cases.values()))
  return dict(zip(cases, results), nowhere=nowhere, kept=kept)


@pytest.mark.slow
def test_export_refuses_to_overwrite_and_names_a_bad_workdir(export_dir, refusals):
  (again, _, again_err), (missing, _, missing_err) = refusals["again"], refusals["missing"]
  assert again == 1
  assert f"{export_dir} exists; pass --overwrite" in again_err
  assert missing == 1
  assert (f"{refusals['nowhere']} is not a directory; expected a training workdir"
          in missing_err)
  assert "Traceback" not in again_err + missing_err


def test_export_files_have_the_permissions_the_umask_gives(export_dir):
  modes = {}
  for root, dirs, files in os.walk(export_dir):
    for name in dirs + files:
      path = os.path.join(root, name)
      modes[os.path.relpath(path, export_dir)] = (os.path.isdir(path),
                                                  stat.S_IMODE(os.stat(path).st_mode))
  modes["."] = (True, stat.S_IMODE(os.stat(export_dir).st_mode))
  wrong = {p: oct(m) for p, (is_dir, m) in modes.items()
           if m != (0o777 if is_dir else 0o666) & ~UMASK}
  assert not wrong and len(modes) > 10, wrong


@pytest.mark.slow
def test_export_never_replaces_or_enters_the_training_run(workdir, refusals):
  code, _, stderr = refusals["into_the_run"]
  assert code == 1
  assert (f"--output={workdir} is, holds or lies inside {workdir / 'checkpoints'}, part of "
          f"the model {workdir}") in stderr
  assert "Traceback" not in stderr
  assert (sorted(os.listdir(workdir / "checkpoints")),
          (workdir / "config.json").read_bytes()) == refusals["kept"]


@pytest.mark.slow
def test_export_cli_help(refusals):
  _, stdout, _ = refusals["help"]
  assert "Export a trained speaker encoder" in stdout
  assert "--workdir" in stdout and "--platforms" in stdout
