"""Replace a file all at once: readers see the old file or the new one, never half of one.

``atomic_write(path)`` writes a temporary file beside ``path`` and renames it over ``path``
when the block ends without an error (the temporary file is removed otherwise). The file is
created with mode 0666 less the umask, as a plain ``open`` would (``tempfile.mkstemp``
would give 0600, which other users of a shared model or output cannot read).
"""

import contextlib
import os
import secrets


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w"):
  """Yields a file object opened with ``mode`` ("w" or "wb") that becomes ``path`` on success."""
  path = os.path.abspath(os.fspath(path))
  tmp = os.path.join(os.path.dirname(path),
                     f".{os.path.basename(path)}.{secrets.token_hex(4)}.tmp")
  fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
  try:
    with os.fdopen(fd, mode) as f:
      yield f
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.unlink(tmp)
    raise
