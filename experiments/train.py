"""Train a GE2E speaker encoder.

  python -m experiments.train --config=experiments/configs/td.py --workdir=runs/td \
      --config.train.num_steps=2000 --config.loss.name=ge2e_contrast

Started again with the same command, it resumes from the workdir's last complete checkpoint.
Multi-host (TPU pod, GPU cluster): add --distributed (jax.distributed.initialize() finds the
cluster), or give --coordinator_address/--num_processes/--process_id explicitly.
"""

import logging as python_logging
import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from experiments import cli, config_checks, distributed, resume
from ge2e_jax import checkpoint

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Path to a config file under experiments/configs.",
                                lock_config=True)
flags.DEFINE_string("workdir", None, "Directory for checkpoints, logs and the resolved config.")
flags.DEFINE_bool("distributed", False, "Call jax.distributed.initialize() before training.")
flags.DEFINE_string("coordinator_address", None, "host:port of process 0 (multi-process).")
flags.DEFINE_integer("num_processes", None, "Number of processes (multi-process).")
flags.DEFINE_integer("process_id", None, "This process's index (multi-process).")
flags.DEFINE_integer("heartbeat_timeout_s", 100,
                     "Multi-process: a process silent this long counts as lost and every other "
                     "one stops (experiments/distributed.py) instead of hanging in a collective.",
                     lower_bound=1)
flags.DEFINE_bool("library_info_logs", False,
                  "Also show orbax's and TFDS's INFO lines (hidden by default: they drown the "
                  "progress lines).")
flags.mark_flags_as_required(["config", "workdir"])

QUIET_LIBRARIES = ("/orbax/", "/tensorflow_datasets/")


def _hide_library_info(record) -> bool:
  if "/orbax/" in record.pathname and _disk_full_report(record):
    return False  # the Checkpointer's CheckpointWriteError says it in one line
  return record.levelno > python_logging.INFO or not any(lib in record.pathname
                                                   for lib in QUIET_LIBRARIES)


def _disk_full_report(record) -> bool:
  """An orbax background thread's report (with traceback) of a save that ran out of space."""
  error = record.exc_info[1] if record.exc_info else None
  return checkpoint.disk_full(error) if error else "No space left on device" in (
      record.getMessage())


def _closed_event_loop(value) -> bool:
  return isinstance(value, RuntimeError) and str(value) == "Event loop is closed"


def _without_closed_event_loop_reports():
  """Drops the reports of tensorstore callbacks that reach the event loop of an aborted
  orbax save after it closed (a full disk): the save's error says it once. They arrive as
  uncaught exceptions or, from tensorstore's threads, as unraisable ones."""
  excepthook, unraisablehook = sys.excepthook, sys.unraisablehook

  def filtered_excepthook(kind, value, traceback):
    if _closed_event_loop(value):
      logging.debug("an aborted checkpoint save's callback: %s", value)
      return
    excepthook(kind, value, traceback)

  def filtered_unraisablehook(unraisable):
    if _closed_event_loop(unraisable.exc_value):
      logging.debug("an aborted checkpoint save's callback: %s", unraisable.exc_value)
      return
    unraisablehook(unraisable)

  sys.excepthook, sys.unraisablehook = filtered_excepthook, filtered_unraisablehook


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if not FLAGS.library_info_logs:
    logging.get_absl_handler().addFilter(_hide_library_info)
  _without_closed_event_loop_reports()
  if FLAGS.distributed or FLAGS.coordinator_address:
    distributed.initialize(FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id,
                           FLAGS.heartbeat_timeout_s)
  logging.info("config:\n%s", FLAGS.config)
  with cli.one_line_errors("train"):  # before TensorFlow is imported: these fail fast
    config_checks.validate(FLAGS.config)
    resume.check_config(os.path.abspath(FLAGS.workdir), FLAGS.config)
  # TensorFlow (the train extra) only once the config is known to be good for this workdir.
  from experiments import training_loop  # pylint: disable=g-import-not-at-top
  with cli.one_line_errors("train", (training_loop.NonFiniteLossError,)):
    with distributed.stop_on_lost_process("train"):
      try:
        training_loop.train_and_evaluate(FLAGS.config, FLAGS.workdir)
      except Exception as err:  # pylint: disable=broad-except  # re-raised unless a full disk
        full = training_loop.disk_full_report(err, FLAGS.workdir)
        if full is None:
          raise
        # orbax's save threads still hold tensorstore reads on an event loop that interpreter
        # shutdown closes (pages of "Event loop is closed", or "cannot schedule new futures"):
        # say it in one line and leave now; the complete steps are already on disk.
        print(f"train: {' '.join(full.split())}", file=sys.stderr, flush=True)
        os._exit(1)


def run():
  """The ``ge2e-train`` console script (setup.cfg)."""
  cli.run(main, "train")


if __name__ == "__main__":
  run()
