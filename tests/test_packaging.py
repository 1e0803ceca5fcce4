"""The wheel: only `ge2e_jax` and `ge2e_jax_recipes` at the top, the repository's
`experiments/` and `data_pipelines/` inside the latter byte for byte, importable by their
repository names after `ge2e_jax_recipes.activate()` only; console scripts pointing at it. The
checkout keeps `python -m experiments.<cli>`."""

import importlib.util
import os
import shutil
import subprocess
import sys
import zipfile

import pytest

import cli_cases  # tests/cli_cases.py (pytest puts tests/ on sys.path)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECIPES = "ge2e_jax_recipes"
TREES = ("experiments", "data_pipelines")
WHEEL_PACKAGES = {"ge2e_jax", RECIPES}
SCRIPTS = {"ge2e-train", "ge2e-evaluate", "ge2e-embed", "ge2e-verify", "ge2e-export",
           "ge2e-diarize"}

IMPORT_CHECK = """
import importlib.util, os, sys
site, names = sys.argv[1], sys.argv[2:]
# The test venv is an editable install whose finder maps `experiments` onto a checkout; a
# venv holding the wheel has none.
sys.meta_path[:] = [f for f in sys.meta_path
                    if not getattr(f, "__module__", "").startswith("__editable__")]
before = list(sys.path)
import ge2e_jax, ge2e_jax_recipes
assert sys.path == before, sys.path
for name in ("experiments", "data_pipelines"):
  assert name not in sys.modules and importlib.util.find_spec(name) is None, name
recipes = ge2e_jax_recipes.activate()
assert recipes == os.path.join(site, "ge2e_jax_recipes"), recipes
assert ge2e_jax_recipes.activate() == recipes and sys.path == [recipes] + before, sys.path
from experiments import training_loop, export
from experiments.configs import td
from data_pipelines import corpus
for module in (training_loop, export, td, corpus, ge2e_jax):
  assert module.__file__.startswith(site + os.sep), module.__file__
for name in names:
  assert getattr(ge2e_jax_recipes, name).__name__ == name, name
print("ok", td.get_config().train.init_from == "")
"""
# What pip's ge2e-verify wrapper runs (a process of its own: export above defines flags too).
CONSOLE_SCRIPT = """
import sys
import ge2e_jax_recipes
sys.argv = ["ge2e-verify", "--help"]
try:
  sys.exit(ge2e_jax_recipes.verify())
finally:
  print(sys.modules["experiments.verify"].__file__)
"""


def recipe_sources() -> dict:
  """{path in the wheel: path in the repository} of every .py file of the recipe trees."""
  sources = {}
  for tree in TREES:
    for folder, _, names in os.walk(os.path.join(REPO, tree)):
      for name in names:
        if name.endswith(".py"):
          path = os.path.relpath(os.path.join(folder, name), REPO)
          sources[f"{RECIPES}/{path}"] = path
  return sources


def test_console_scripts_run_the_checkout_clis():
  scripts = cli_cases.entry_points()
  assert set(scripts) == SCRIPTS
  before = list(sys.path)
  spec = importlib.util.spec_from_file_location(
      RECIPES, os.path.join(REPO, "src", RECIPES, "__init__.py"))
  recipes = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(recipes)
  assert sys.path == before  # only activate() changes it
  for script, target in scripts.items():
    package, name = target.split(":")
    assert package == RECIPES and script == f"ge2e-{name}", (script, target)
    assert getattr(recipes, name).__name__ == name
    with open(os.path.join(REPO, "experiments", f"{name}.py"), encoding="utf-8") as f:
      assert "\ndef run():\n" in f.read(), name


@pytest.mark.slow
def test_wheel_holds_the_recipes_unchanged_under_one_project_name(tmp_path):
  source = tmp_path / "src"
  source.mkdir()
  for name in ("setup.py", "setup.cfg", "pyproject.toml", "README.md"):
    shutil.copy(os.path.join(REPO, name), source)
  for name in ("ge2e_jax", "src", *TREES):
    shutil.copytree(os.path.join(REPO, name), source / name,
                    ignore=shutil.ignore_patterns("__pycache__"))
  built = subprocess.run([sys.executable, "-m", "pip", "wheel", ".", "-w", tmp_path / "dist",
                          "--no-deps", "--no-build-isolation", "-q"],
                         cwd=source, capture_output=True, text=True, timeout=300)
  assert built.returncode == 0, built.stderr[-3000:]
  (wheel,) = (tmp_path / "dist").iterdir()
  sources = recipe_sources()
  with zipfile.ZipFile(wheel) as archive:
    names = archive.namelist()
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top == WHEEL_PACKAGES
    # What the wheel holds of the trees is their .py files, as they are in the repository.
    shipped = {n for n in names if n.startswith(tuple(f"{RECIPES}/{t}/" for t in TREES))}
    assert shipped == set(sources), shipped ^ set(sources)
    for name, path in sources.items():
      with open(os.path.join(REPO, path), "rb") as f:
        assert archive.read(name) == f.read(), path
    archive.extractall(tmp_path / "site")
  site = os.fspath(tmp_path / "site")
  env = dict(os.environ, PYTHONPATH=site)
  functions = [target.split(":")[1] for target in cli_cases.entry_points().values()]
  checked = subprocess.run([sys.executable, "-c", IMPORT_CHECK, site, *functions],
                           cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
  assert checked.returncode == 0, checked.stderr[-3000:]
  assert checked.stdout.split()[-2:] == ["ok", "True"], checked.stdout[-2000:]
  script = subprocess.run([sys.executable, "-c", CONSOLE_SCRIPT], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
  assert script.returncode == 0, script.stderr[-3000:]
  assert "Flags of verify" in script.stdout, script.stdout[:1000]
  assert script.stdout.split()[-1] == os.path.join(site, RECIPES, "experiments", "verify.py")
