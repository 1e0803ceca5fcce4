"""Packaging: the wheel ships `experiments/` and `data_pipelines/` under project names.

The repository keeps its layout (`python -m experiments.train` from a checkout), but a wheel
must not install top-level packages named `experiments` or `data_pipelines`, which would
clash with a user's own. In the wheel they are `ge2e_jax_experiments` and `ge2e_jax_data`,
and `build_py` rewrites the imports and module paths that name them
(`from experiments import training_loop` -> `from ge2e_jax_experiments import training_loop`). An
editable install (`pip install -e .`, `make setup`) builds no copies to rewrite, so it maps
both the project names and the repository names onto the checkout.
Everything else is in setup.cfg.
"""

import os
import re
import sys

import setuptools
from setuptools.command import build_py

RENAMED = {"experiments": "ge2e_jax_experiments", "data_pipelines": "ge2e_jax_data"}
# A renamed package as a module path: before `.name` or ` import`, not inside a longer word.
MODULE_PATH = re.compile(r"\b(%s)(?=\.[A-Za-z_]|\s+import\b)" % "|".join(RENAMED))
EDITABLE = "editable_wheel" in sys.argv


def rename_modules(source: str) -> str:
  return MODULE_PATH.sub(lambda m: RENAMED[m.group(1)], source)


def packages_and_dirs():
  packages = ["ge2e_jax"] + [f"ge2e_jax.{p}" for p in setuptools.find_packages("ge2e_jax")]
  dirs = {}
  for repo_name, wheel_name in RENAMED.items():
    names = [repo_name] + [f"{repo_name}.{p}" for p in setuptools.find_packages(repo_name)]
    for name in names:
      renamed = wheel_name + name[len(repo_name):]
      packages.append(renamed)
      dirs[renamed] = name.replace(".", "/")
    if EDITABLE:
      packages += names
  return packages, dirs


class BuildPy(build_py.build_py):
  """Copies the packages, then rewrites the renamed packages' module paths in the copies."""

  def run(self):
    super().run()
    if getattr(self, "editable_mode", False):
      return
    for wheel_name in RENAMED.values():
      for root, _, files in os.walk(os.path.join(self.build_lib, wheel_name)):
        for name in files:
          if name.endswith(".py"):
            path = os.path.join(root, name)
            with open(path, encoding="utf-8") as f:
              source = f.read()
            with open(path, "w", encoding="utf-8") as f:
              f.write(rename_modules(source))


if __name__ == "__main__":  # how pip and setuptools run it; tests import rename_modules
  PACKAGES, PACKAGE_DIR = packages_and_dirs()
  setuptools.setup(packages=PACKAGES, package_dir=PACKAGE_DIR, cmdclass={"build_py": BuildPy})
