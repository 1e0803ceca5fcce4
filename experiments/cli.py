"""What the experiments/ command lines share: a user's mistake gives one line, not a traceback.

  app.run(main, flags_parser=cli.parse_flags)   # an unknown --config.x.y field: one line
  with cli.one_line_errors("train"): ...        # bad values, paths, checkpoints: one line

The traceback of such an error is still logged at DEBUG level (``--verbosity=1``).
"""

import contextlib
import re
import sys

from absl import app, logging


def parse_flags(argv):
  """absl's flag parsing, with ml_collections' error for an unknown config field as one line.

  A locked ConfigDict raises AttributeError/KeyError (not a flags error) from inside the
  parser for ``--config.train.nonexistent=1``; absl would print it as a traceback.
  """
  try:
    return app.parse_flags_with_usage(argv)
  except (AttributeError, KeyError) as err:
    sys.exit(f"FATAL Flags parsing error: {_unknown_field(err, argv)}\n"
             "Pass --helpshort or --helpfull to see help on flags.")


def _unknown_field(err: Exception, argv) -> str:
  key_error = err if isinstance(err, KeyError) else err.__context__ or err
  message = key_error.args[0] if key_error.args else str(key_error)
  first, *hints = str(message).splitlines()
  key = first.strip("'\"")
  for arg in argv[1:]:
    match = re.match(r"--([A-Za-z_][\w.]*)(=|$)", arg)
    fields = match.group(1).split(".") if match else []
    if key in fields[1:]:
      owner = ".".join(fields[:fields.index(key)])
      hint = f" ({hints[0].strip()})" if hints else ""
      return f"{arg}: {owner} has no field {key!r}{hint}"
  return f"unknown config field {key!r}"


def user_errors() -> tuple:
  """Errors that mean "this input cannot be used": bad values (ValueError: ConfigError and
  CheckpointMismatchError included), paths (OSError) and workdirs without a usable step."""
  from ge2e_jax import checkpoint  # pylint: disable=g-import-not-at-top  # keeps --help fast
  return (ValueError, OSError, checkpoint.NoUsableCheckpointError)


@contextlib.contextmanager
def one_line_errors(command: str, extra_errors: tuple = ()):
  """Turns user errors (and ``extra_errors``) raised in the block into one line, exit 1."""
  try:
    yield
  except user_errors() + extra_errors as err:
    logging.debug("%s failed", command, exc_info=True)
    raise SystemExit(f"{command}: {' '.join(str(err).split())}") from None
