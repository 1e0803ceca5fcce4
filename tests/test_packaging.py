"""The wheel: only project-named top-level packages, imports rewritten to them, console
scripts pointing at modules it holds; the checkout keeps `python -m experiments.<cli>`."""

import configparser
import importlib.util
import os
import shutil
import subprocess
import sys
import zipfile

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WHEEL_PACKAGES = {"ge2e_jax", "ge2e_jax_experiments", "ge2e_jax_data"}
SCRIPTS = {"ge2e-train", "ge2e-evaluate", "ge2e-embed", "ge2e-verify", "ge2e-export",
           "ge2e-diarize"}

IMPORT_CHECK = """
import sys
from ge2e_jax_experiments import training_loop, export
from ge2e_jax_experiments.configs import td
from ge2e_jax_data import corpus
generic = sorted(m for m in sys.modules if m.split(".")[0] in ("experiments", "data_pipelines"))
assert not generic, generic
for module in (training_loop, export, td, corpus):
  assert module.__file__.startswith(sys.argv[1]), module.__file__
print("ok", td.get_config().train.init_from == "")
"""


def load_setup_py():
  spec = importlib.util.spec_from_file_location("ge2e_setup", os.path.join(REPO, "setup.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_rename_touches_module_paths_only():
  rename = load_setup_py().rename_modules
  cases = {
      "from experiments import training_loop": "from ge2e_jax_experiments import training_loop",
      "  from data_pipelines.builders import common":
          "  from ge2e_jax_data.builders import common",
      "import data_pipelines.builders": "import ge2e_jax_data.builders",
      '[py, "-m", "experiments.train", "--config=experiments/configs/td.py"]':
          '[py, "-m", "ge2e_jax_experiments.train", "--config=experiments/configs/td.py"]',
      "cannot mix two experiments.\n": "cannot mix two experiments.\n",
      "from ge2e_jax_experiments import training_loop": "from ge2e_jax_experiments import training_loop",
      "my_experiments.train": "my_experiments.train",
  }
  for source, wheel in cases.items():
    assert rename(source) == wheel


def test_console_scripts_name_run_functions():
  config = configparser.ConfigParser()
  config.read(os.path.join(REPO, "setup.cfg"))
  scripts = dict(line.split(" = ") for line in
                 config["options.entry_points"]["console_scripts"].strip().splitlines())
  assert set(scripts) == SCRIPTS
  checked = 0
  for target in scripts.values():
    module, function = target.split(":")
    path = os.path.join(REPO, "experiments", module.split(".")[1] + ".py")
    assert module.startswith("ge2e_jax_experiments.") and function == "run"
    if os.path.exists(path):  # experiments/verify.py comes from another branch
      with open(path) as f:
        assert "\ndef run():\n" in f.read(), path
      checked += 1
  assert checked >= 4


@pytest.mark.slow
def test_wheel_holds_only_project_named_packages_that_import(tmp_path):
  source = tmp_path / "src"
  source.mkdir()
  for name in ("setup.py", "setup.cfg", "pyproject.toml", "README.md"):
    shutil.copy(os.path.join(REPO, name), source)
  for name in ("ge2e_jax", "experiments", "data_pipelines"):
    shutil.copytree(os.path.join(REPO, name), source / name,
                    ignore=shutil.ignore_patterns("__pycache__"))
  built = subprocess.run([sys.executable, "-m", "pip", "wheel", ".", "-w", tmp_path / "dist",
                          "--no-deps", "--no-build-isolation", "-q"],
                         cwd=source, capture_output=True, text=True, timeout=300)
  assert built.returncode == 0, built.stderr[-3000:]
  (wheel,) = (tmp_path / "dist").iterdir()
  with zipfile.ZipFile(wheel) as archive:
    names = archive.namelist()
    archive.extractall(tmp_path / "site")
  top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
  assert top == WHEEL_PACKAGES
  assert "ge2e_jax_experiments/configs/td.py" in names
  assert "ge2e_jax_data/builders/manifest.py" in names
  site = os.fspath(tmp_path / "site")
  env = dict(os.environ, PYTHONPATH=site)
  checked = subprocess.run([sys.executable, "-c", IMPORT_CHECK, site], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=300)
  assert checked.returncode == 0, checked.stderr[-3000:]
  assert checked.stdout.split() == ["ok", "True"]
