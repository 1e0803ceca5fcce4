"""What every experiments/ command line shares: its help, one error line, one exit code.

  def run():
    cli.run(main, "verify")                  # the tool's entry point (console script too)

  with cli.one_line_errors("train"): ...     # bad values, paths, checkpoints: one line, exit 1

``cli.run`` parses the flags itself: ``--help`` prints the tool's docstring and its own flags
with their defaults (absl's would show only the flags of ``sys.argv[0]``, which for a console
script is the wrapper); an unknown flag (with a suggestion, or the flag's new name), a
missing required flag, a bad value, an unknown ``--config.x.y`` field and a
``app.UsageError`` raised by ``main`` each end in ONE line ``<tool>: <what>``, exit status 2.
A missing optional dependency ends in one line naming the extra that installs it, exit 1.
The traceback of a handled error is still logged at DEBUG level (``--verbosity=1``).
"""

import contextlib
import difflib
import os
import re
import sys

from absl import app, flags, logging

from ge2e_jax import checkpoint, progress

FLAGS = flags.FLAGS
USAGE_ERROR = 2  # exit status of a command line that cannot be run (as argparse's)
HELP_FLAGS = ("--help", "-h", "--helpshort", "-?")
# Optional dependencies: the top-level module -> the extra of setup.cfg that installs it.
EXTRAS = {"tensorflow": "train", "tensorflow_datasets": "train", "tensorboard": "train",
          "matplotlib": "plots", "pyroomacoustics": "augment", "ai_edge_litert": "tflite"}
REQUIRED_MESSAGE = re.compile(r"Flag --(\w+) must (?:have a value other than None|be "
                              r"specified)")
CONFIG_TRACEBACK = re.compile(r"Error whilst parsing config file:\s*Traceback \(most recent call "
                              r"last\):")


def define_quiet_flag():
  """``--quiet`` for the tools that show progress (``ge2e_jax.progress``); ``run`` applies it."""
  flags.DEFINE_bool("quiet", False, "No progress bar or progress lines (results and errors "
                    "still print).")


def run(main, name: str, expand_argv=None, renamed: dict | None = None):
  """absl's ``app.run(main)`` with the shared parser and error handler.

  ``expand_argv(argv) -> argv`` rewrites the command line before parsing (verify's
  ``--enroll a.wav b.wav`` lists); ``renamed`` maps an old flag name to its new one, named
  in the error when the old one is used.
  """
  module = main.__module__

  def parser(argv):
    if any(arg in HELP_FLAGS for arg in argv[1:]):
      print(help_text(module, name))
      sys.exit(0)
    return parse_flags(expand_argv(argv) if expand_argv else argv, name, renamed or {})

  def handled_main(argv):
    if "quiet" in FLAGS:
      progress.set_quiet(FLAGS.quiet)
    try:
      return main(argv)
    except app.UsageError as err:
      fail(name, str(err))
    except ModuleNotFoundError as err:
      extra = EXTRAS.get((err.name or "").split(".")[0])
      if extra is None:
        raise
      logging.debug("%s failed", name, exc_info=True)
      sys.exit(missing_extra(name, err.name, extra))

  try:
    app.run(handled_main, flags_parser=parser)
  except BrokenPipeError:  # the reader went away (`| head`): stop quietly, as cat does
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing left to flush
    sys.exit(1)


def missing_extra(name: str, module: str, extra: str) -> str:
  return (f"{name}: this needs {module.split('.')[0]}, which the base install leaves out: "
          f"pip install 'ge2e_jax[{extra}]'")


def require(name: str, module: str, extra: str, why: str):
  """Stops with the one-line extra message now (before any work) if ``module`` is missing."""
  try:
    __import__(module)
  except ModuleNotFoundError:
    sys.exit(missing_extra(name, module, extra) + f" ({why})")


def fail(name: str, message: str):
  print(f"{name}: {' '.join(message.split())}", file=sys.stderr)
  sys.exit(USAGE_ERROR)


def help_text(module: str, name: str) -> str:
  """The tool's docstring and the flags it defines (its module's and this one's), defaults in."""
  # A tool run as `python -m` is __main__; absl files its flags under sys.argv[0].
  owners = [sys.argv[0] if module == "__main__" else module, __name__]
  doc = (sys.modules[module].__doc__ or name).strip()
  by_module = FLAGS.flags_by_module_dict()
  # module_help's first line names the module (a path for `python -m`): left out.
  sections = [FLAGS.module_help(owner).lstrip("\n").split("\n", 1)[1] for owner in owners
              if owner in by_module]
  return f"{doc}\n\nFlags of {name} (--helpfull adds absl's own):\n" + "\n".join(sections)


def parse_flags(argv, name: str = "", renamed: dict | None = None):
  """absl's flag parsing; every error as one line ``<name>: ...``, exit status 2."""
  name = name or argv[0]
  try:
    return FLAGS(argv)
  except flags.UnrecognizedFlagError as err:
    new = (renamed or {}).get(err.flagname)
    if new:
      fail(name, f"--{err.flagname} is now --{new}: {FLAGS[new].help}")
    close = difflib.get_close_matches(err.flagname, list(FLAGS), n=1)
    hint = f"; did you mean --{close[0]}?" if close else ""
    fail(name, f"unknown flag --{err.flagname}{hint} (--help lists {name}'s flags)")
  except flags.Error as err:
    missing = REQUIRED_MESSAGE.search(str(err))
    if missing:
      flag = missing.group(1)
      fail(name, f"--{flag} is required: {FLAGS[flag].help}")
    fail(name, _without_traceback(str(err).removeprefix("flag ")))
  except (AttributeError, KeyError) as err:
    # A locked ConfigDict raises these (not a flags error) for --config.train.nonexistent=1.
    fail(name, _unknown_field(err, argv))


def _without_traceback(message: str) -> str:
  """ml_collections puts the whole traceback of a config file that raised into its flag
  error; the traceback's last line says what was wrong."""
  head, *trace = CONFIG_TRACEBACK.split(message, maxsplit=1)
  return head + trace[0].strip().splitlines()[-1] if trace else message


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
  return (ValueError, OSError, checkpoint.NoUsableCheckpointError)


@contextlib.contextmanager
def one_line_errors(command: str, extra_errors: tuple = ()):
  """Turns user errors (and ``extra_errors``) raised in the block into one line, exit 1."""
  try:
    yield
  except user_errors() + extra_errors as err:
    logging.debug("%s failed", command, exc_info=True)
    raise SystemExit(f"{command}: {' '.join(str(err).split())}") from None
