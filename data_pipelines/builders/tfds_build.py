"""`tfds build` without apache-beam: TFDS's own build command, started alone.

TFDS 4.9.10's `tfds` entry point imports its Beam-based `convert_format`
command at start-up and so fails where apache-beam is not installed
(tensorflow/datasets#5463); the `build` command itself needs no Beam. This runs
that same command with the same flags, e.g.
  python -m data_pipelines.builders.tfds_build \
      data_pipelines/builders/synthetic_voices.py --config=ti --data_dir=DIR
Where apache-beam is installed, `tfds build ...` takes identical arguments.
"""

from absl import app
from tensorflow_datasets.scripts.cli import build
from tensorflow_datasets.scripts.cli import cli_utils


def main(args: build.Args) -> None:
  args.execute()


if __name__ == "__main__":
  app.run(main, flags_parser=cli_utils.make_flags_parser(
      build.Args, description="Build TFDS datasets (the `tfds build` command)."))
