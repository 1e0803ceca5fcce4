"""Every console script (setup.cfg) through experiments/cli.py: its own flags in --help, and
one line with exit status 2 for a typo'd flag, a missing required flag, a bad value.

Each case runs as pip's console-script wrapper runs it (``sys.argv[0]`` is the script, the
tool's module is not ``__main__``); one process per script runs its cases one after the
other, and the scripts' processes run side by side: each pays for a python start.
"""

import os
import re
import subprocess
import sys

import pytest

import cli_cases  # tests/cli_cases.py (pytest puts tests/ on sys.path)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_all(cases: dict) -> dict:
  """{case: (exit status, stdout, stderr)}; cases are (script, args)."""
  procs = {}
  for script in cli_cases.console_scripts():
    mine = {case: args for case, (s, args) in cases.items() if s == script}
    procs[script] = mine, cli_cases.start(script, list(mine.values()))
  results = {}
  for script, (mine, proc) in procs.items():
    results.update(zip(mine, cli_cases.finish(proc)[0]))
  return results


def flags_defined_in(module: str) -> set:
  """The flag names a tool's source defines (read from the file, not from absl)."""
  with open(os.path.join(REPO, *module.split(".")) + ".py", encoding="utf-8") as f:
    source = f.read()
  return set(re.findall(r"DEFINE_\w+\(\s*\"(\w+)\"", source))


@pytest.mark.slow
def test_help_and_misuse_of_every_console_script():
  scripts = cli_cases.console_scripts()
  assert {"ge2e-train", "ge2e-evaluate", "ge2e-embed", "ge2e-verify", "ge2e-export"} <= set(
      scripts)
  cases = {}
  for script in scripts:
    cases[(script, "help")] = (script, ["--help"])
    cases[(script, "typo")] = (script, ["--modle_typo=x"])
  cases["verify without --model"] = ("ge2e-verify", ["--enroll", "a.wav", "--test", "b.wav"])
  cases["verify --enroll swallows"] = ("ge2e-verify", ["--model=m", "--enroll", "a.wav",
                                                       "b.wav", "c.wav"])
  cases["verify bad value"] = ("ge2e-verify", ["--model=m", "--batch_files=many"])
  cases["evaluate old --enroll"] = ("ge2e-evaluate", ["--model=m", "--enroll=3"])
  cases["export --workdir alias"] = ("ge2e-export", ["--workdir=/nonexistent/run",
                                                     "--platforms=gpu"])
  cases["train config raises"] = ("ge2e-train", [
      "--config=experiments/configs/ti_cpu_real.py:fast", "--workdir=/nonexistent/run"])
  results = run_all(cases)

  for script, (module, _) in scripts.items():
    name = script.removeprefix("ge2e-")
    code, stdout, stderr = results[(script, "help")]
    assert code == 0, (script, stderr[-2000:])
    assert f"Flags of {name}" in stdout, (script, stdout[:500])
    for flag in flags_defined_in(module):
      assert re.search(rf"--(\[no\])?{flag}\b", stdout), (script, flag)
    assert "(default:" in stdout
    assert "--logtostderr" not in stdout  # absl's own flags stay in --helpfull

    code, stdout, stderr = results[(script, "typo")]
    assert code == 2, (script, stderr[-2000:])
    assert len(stderr.strip().splitlines()) == 1, stderr
    assert stderr.startswith(f"{name}: unknown flag --modle_typo") and (
        f"(--help lists {name}'s flags)" in stderr), stderr

  def one_line(case):
    code, _, stderr = results[case]
    assert code == 2 and len(stderr.strip().splitlines()) == 1, (case, code, stderr[-2000:])
    return stderr.strip()

  assert one_line("verify without --model") == (
      "verify: --model is required: Training workdir or export dir.")
  assert one_line("verify --enroll swallows") == (
      "verify: no test files (--enroll took a.wav b.wav c.wav): give them after --test, e.g. "
      "--enroll a.wav b.wav --test c.wav")
  assert one_line("verify bad value").startswith("verify: --batch_files=many: ")
  assert one_line("evaluate old --enroll").startswith("evaluate: --enroll is now --num_enroll")
  # --workdir is --model's alias: the value reaches --platforms' check, not "required".
  assert one_line("export --workdir alias").startswith("export: --platforms=")
  assert one_line("train config raises") == (  # not the config file's traceback
      "train: --config=experiments/configs/ti_cpu_real.py:fast: ValueError: "
      "ti_cpu_real.py:fast: expected no suffix or ':sweep'")


def test_verify_lists_cannot_swallow_each_other():
  from experiments import verify  # pylint: disable=g-import-not-at-top
  argv = ["v", "--model=m", "--enroll", "a.wav", "b.wav", "--test", "c.wav", "--threshold=0.5",
          "d.wav"]
  assert verify.expand_lists(argv) == [
      "v", "--model=m", "--enroll=a.wav", "--enroll=b.wav", "--test=c.wav", "--threshold=0.5",
      "d.wav"]
  # Repeated flags and files after `--` are taken as they are.
  assert verify.expand_lists(["v", "--enroll=a.wav", "--enroll=b.wav", "--", "--enroll"]) == [
      "v", "--enroll=a.wav", "--enroll=b.wav", "--", "--enroll"]


def test_a_reader_that_closes_the_pipe_early_gets_no_traceback():
  """`ge2e-verify --help | head -1`: the reader may be gone before the help is written."""
  proc = subprocess.Popen([sys.executable, "-m", "experiments.verify", "--help"], cwd=REPO,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          env=dict(os.environ, PYTHONPATH=REPO))
  proc.stdout.close()  # gone before the first write
  stderr = proc.communicate(timeout=120)[1].decode()
  assert proc.returncode == 1 and stderr == "", stderr[-2000:]
