"""`tfds build` without apache-beam: TFDS's own build command, started alone.

TFDS 4.9.10's `tfds` entry point imports its Beam-based `convert_format`
command at start-up and so fails where apache-beam is not installed
(tensorflow/datasets#5463); the `build` command itself needs no Beam. This runs
that same command with the same flags, e.g.
  python -m data_pipelines.builders.tfds_build \
      data_pipelines/builders/synthetic_voices.py --config=ti --data_dir=DIR
Where apache-beam is installed, `tfds build ...` takes identical arguments.

A build that cannot run (a root that is missing or a file, no speakers or audio, every
speaker in one split, an unknown field of a JSON --config) ends in one line
``tfds_build: <why>``, exit status 1 (``experiments.cli.one_line_errors``).
"""

import dataclasses
import difflib
import re
import sys

from absl import app
from tensorflow_datasets.scripts.cli import build
from tensorflow_datasets.scripts.cli import cli_utils

from experiments import cli

NAME = "tfds_build"
UNKNOWN_FIELD = re.compile(r"(\w+)\.__init__\(\) got an unexpected keyword argument '(\w+)'")


def main(args: build.Args) -> None:
  try:
    with cli.one_line_errors(NAME):
      args.execute()
  except TypeError as err:  # a JSON --config naming a field its config class lacks
    match = UNKNOWN_FIELD.search(str(err))
    if not match:
      raise
    sys.exit(f"{NAME}: --config: {unknown_field(*match.groups())}")


def unknown_field(class_name: str, field: str) -> str:
  """'<class> has no field <field>', with the closest field of that (loaded) config class."""
  fields = []
  for module in list(sys.modules.values()):
    config_class = getattr(module, class_name, None)
    if dataclasses.is_dataclass(config_class):
      fields = [f.name for f in dataclasses.fields(config_class)]
      break
  close = difflib.get_close_matches(field, fields, n=1)
  hint = f"; did you mean {close[0]!r}?" if close else ""
  return f"{class_name} has no field {field!r}{hint} (fields: {', '.join(sorted(fields))})"


if __name__ == "__main__":
  app.run(main, flags_parser=cli_utils.make_flags_parser(
      build.Args, description="Build TFDS datasets (the `tfds build` command)."))
