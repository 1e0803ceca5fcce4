"""Several command lines of one console script in ONE python process (each pays for a python,
jax and TensorFlow start otherwise), run as pip's console-script wrapper runs them.

  results, stderr = cli_cases.run("ge2e-verify", [["--help"], ["--model=m", ...]])

Each case starts from the flags' defaults; ``results[i]`` is (exit status, stdout, stderr)
of case i as a process of its own would end: a ``SystemExit`` carrying a message prints it
to stderr with status 1, as Python does. ``stderr`` is what the process wrote outside the
cases (at exit, e.g. from background threads).
"""

import configparser
import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DRIVER = """
import contextlib, io, json, sys
from absl import flags
from {module} import {function} as run
results = []
for args in json.loads(sys.argv[1]):
  flags.FLAGS.unparse_flags()  # each case starts from the defaults
  sys.argv = [{script!r}] + args
  out, err = io.StringIO(), io.StringIO()
  with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
    try:
      code = run()
    except SystemExit as exit_:
      code = exit_.code
    if code is None:  # what the interpreter does with sys.exit(None) and sys.exit("message")
      code = 0
    elif isinstance(code, str):
      print(code, file=sys.stderr)
      code = 1
  results.append((code, out.getvalue(), err.getvalue()))
print(json.dumps(results))
"""


def entry_points() -> dict:
  """{script: target} of setup.cfg's console_scripts."""
  cfg = configparser.ConfigParser()
  cfg.read(os.path.join(REPO, "setup.cfg"))
  lines = cfg["options.entry_points"]["console_scripts"].strip().splitlines()
  return dict((part.strip() for part in line.split("=")) for line in lines)


def console_scripts() -> dict:
  """{script: (checkout module, function)}: the target `ge2e_jax_recipes:<name>` runs
  `experiments.<name>.run()` (src/ge2e_jax_recipes)."""
  return {script: (f"experiments.{target.split(':')[1]}", "run")
          for script, target in entry_points().items()}


def start(script: str, cases: list) -> subprocess.Popen:
  """The process running ``cases`` (lists of arguments) of ``script`` (a console script of
  setup.cfg, or "module:function" for a tool that is none); see ``finish``."""
  module, function = console_scripts().get(script) or script.split(":")
  code = DRIVER.format(script=script, module=module, function=function)
  return subprocess.Popen(
      [sys.executable, "-c", code, json.dumps([list(map(str, c)) for c in cases])], cwd=REPO,
      text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
      env=dict(os.environ, PYTHONPATH=REPO))


def finish(proc: subprocess.Popen, timeout=300) -> tuple[list, str]:
  stdout, stderr = proc.communicate(timeout=timeout)
  assert proc.returncode == 0, stderr[-3000:]
  return [tuple(r) for r in json.loads(stdout.splitlines()[-1])], stderr


def run(script: str, cases: list, timeout=300) -> tuple[list, str]:
  return finish(start(script, cases), timeout)
