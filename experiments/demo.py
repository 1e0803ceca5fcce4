"""`make demo`: the whole product on the embedded synthetic-voice corpus, on CPU.

Runs, as a user would, one command after the other (each is printed first):
  1. build the synthetic "ok computer" corpus with espeak-ng   -> runs/tfds
  2. train the td model for a few minutes (progress lines)     -> runs/demo
  3. evaluate on held-out synthetic speakers (EER, minDCF)     -> runs/demo/eval
  4. export for serving (SavedModel, jax.export, params)       -> runs/demo/export
  5. embed an unseen speaker's recording with the export       -> runs/demo/embeddings.npz
  6. verify: two recordings of a held-out speaker enrolled, a third and another speaker's
     tested (the README's first journey)                        -> runs/demo/verify/*.wav
Run again, it reuses what is done (the corpus, a finished training run) and redoes the rest.
"""

import os
import shlex
import subprocess
import sys
import time

from absl import app, flags
import soundfile as sf

from experiments import cli
from ge2e_jax.features import SAMPLE_RATE

FLAGS = flags.FLAGS
flags.DEFINE_string("write_test_utterance", None,
                    "Only write the demo corpus's first test-split utterance to this wav file "
                    "(step 5 runs this in a subprocess, keeping TensorFlow's start-up lines out "
                    "of the demo's output).")
flags.DEFINE_string("write_verify_files", None,
                    "Only write alice1-3.wav (one test-split speaker) and bob1.wav (another) "
                    "into this folder (step 6).")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA_DIR = os.path.join("runs", "tfds")
WORKDIR = os.path.join("runs", "demo")
CORPUS = "synthetic_voices/td_ok_computer"
NOISE = ("/orbax/", "feature.py:", "oneDNN", "cuda", "TF-TRT", "rebuild TensorFlow",
         "absl::InitializeLog", "libtpu", "computation placer", "xla_bridge")


def step(title: str, cmd: list[str], show=lambda line: True):
  print(f"\n== {title}\n$ {' '.join(shlex.quote(c) for c in cmd)}", flush=True)
  start = time.time()
  proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, env=dict(os.environ, PYTHONPATH=ROOT))
  for line in proc.stdout:
    if show(line) and not any(n in line for n in NOISE):
      print("  " + line.rstrip(), flush=True)
  if proc.wait():
    raise SystemExit(f"demo step '{title}' failed (exit {proc.returncode}); see the lines above")
  print(f"  ({time.time() - start:.0f} s)", flush=True)


def write_test_utterance(path: str):
  """Writes the first test-split utterance (a speaker never trained on) as a wav file."""
  from data_pipelines import corpus  # pylint: disable=g-import-not-at-top  # TF: the train extra
  example = next(corpus.iterate(CORPUS, "test", os.path.join(ROOT, DATA_DIR)))
  sf.write(os.path.join(ROOT, path), example["audio"], SAMPLE_RATE)
  print(f"wrote {path}: speaker {example['speaker']}, "
        f"{len(example['audio']) / SAMPLE_RATE:.2f} s")


def write_verify_files(folder: str):
  """alice1-3.wav: three utterances of one held-out speaker; bob1.wav: another speaker's."""
  from data_pipelines import corpus  # pylint: disable=g-import-not-at-top  # TF: the train extra
  by_speaker = {}
  for example in corpus.iterate(CORPUS, "test", os.path.join(ROOT, DATA_DIR)):
    by_speaker.setdefault(example["speaker"], []).append(example["audio"])
    alice, *others = by_speaker
    if len(by_speaker[alice]) >= 3 and others:
      break
  os.makedirs(os.path.join(ROOT, folder), exist_ok=True)
  files = {f"alice{n + 1}.wav": by_speaker[alice][n] for n in range(3)}
  files["bob1.wav"] = by_speaker[others[0]][0]
  for name, wav in files.items():
    sf.write(os.path.join(ROOT, folder, name), wav, SAMPLE_RATE)
  print(f"wrote {', '.join(files)} to {folder}: alice = {alice}, bob = {others[0]}")


def run_demo():
  py = sys.executable
  step("1/6 build the synthetic-voice corpus (espeak-ng; `tfds build` with the same flags)",
       [py, "-m", "data_pipelines.builders.tfds_build",
        "data_pipelines/builders/synthetic_voices.py", f"--config={CORPUS.split('/')[1]}",
        f"--data_dir={DATA_DIR}"],
       show=lambda line: "Error" in line or "error" in line or "skipped" in line
       or "Dataset generation complete" in line or "already exists" in line)
  step("2/6 train the td model",
       [py, "-m", "experiments.train", "--config=experiments/configs/td_demo.py",
        f"--workdir={WORKDIR}"],
       show=lambda line: ("training_loop.py" in line or "reporting.py" in line or "Error" in line
                          or "error" in line))
  step("3/6 evaluate on held-out speakers",
       [py, "-m", "experiments.evaluate", f"--model={WORKDIR}"],
       show=lambda line: line.startswith("EER") or "Error" in line)
  export_dir = os.path.join(WORKDIR, "export")
  step("4/6 export for serving",
       [py, "-m", "experiments.export", f"--model={WORKDIR}", f"--output={export_dir}",
        "--overwrite", "--platforms=cpu"],
       show=lambda line: not line.startswith(("I1", "W1")))
  sample = os.path.join(WORKDIR, "unseen_speaker.wav")
  step("5/6 embed an unseen speaker's recording with the export",
       [py, "-m", "experiments.demo", f"--write_test_utterance={sample}"],
       show=lambda line: line.startswith("wrote"))
  output = os.path.join(WORKDIR, "embeddings.npz")
  step("   embed it",
       [py, "-m", "experiments.embed", f"--model={export_dir}", f"--output={output}", sample],
       show=lambda line: not line.startswith(("I1", "W1")))
  verify_dir = os.path.join(WORKDIR, "verify")
  step("6/6 verify a held-out speaker: recordings for it",
       [py, "-m", "experiments.demo", f"--write_verify_files={verify_dir}"],
       show=lambda line: line.startswith("wrote"))
  alice1, alice2, alice3, bob1 = (os.path.join(verify_dir, f"{n}.wav")
                                  for n in ("alice1", "alice2", "alice3", "bob1"))
  step("   verify",
       [py, "-m", "experiments.verify", f"--model={export_dir}", "--enroll", alice1, alice2,
        "--test", alice3, bob1],
       show=lambda line: not line.startswith(("I1", "W1")))
  print(f"""
Done. Where everything went:
  corpus       {DATA_DIR}/synthetic_voices/td_ok_computer (build_report.json inside)
  training     {WORKDIR}  (config.json, versions.json, checkpoints/, tensorboard/, eval_history.jsonl, model_card.json)
  evaluation   {WORKDIR}/eval  (eval.json, det.png, embeddings_2d.png)
  export       {export_dir}  (saved_model/, d_vector.jax_export, params/, config.json, model_card.json)
  d-vector     {output}  (paths, embeddings) of {sample}
  verify       {verify_dir}  (alice1-3.wav, bob1.wav; the JSON lines above)""")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if FLAGS.write_test_utterance:
    write_test_utterance(FLAGS.write_test_utterance)
  elif FLAGS.write_verify_files:
    write_verify_files(FLAGS.write_verify_files)
  else:
    run_demo()


if __name__ == "__main__":
  cli.run(main, "demo")
