"""WORKSPACE.md's file lists against the tree: every source file has its one-line job there,
and every path WORKSPACE.md names exists. Reads files only (no jax, no TensorFlow)."""

import os
import re
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKSPACE = os.path.join(ROOT, "WORKSPACE.md")
LISTED_DIRS = ("ge2e_jax", "experiments", "data_pipelines", "benchmarks")
SUFFIXES = (".py", ".sh")
# "- `dir/file.py` — job": one bullet per file, under the heading "### `dir/`".
BULLET = re.compile(r"^- `([\w./-]+)` — \S")
HEADING = re.compile(r"^### `([\w./-]+)/`\s*$")
# Any repository path named in backticks or in prose: must exist (globs and <placeholders> aside).
PATH = re.compile(r"(?<![\w./-])((?:ge2e_jax|experiments|data_pipelines|benchmarks|tests|docs)"
                  r"/[\w./-]*\w)")


def source_files() -> list[str]:
  """The *.py and *.sh files under LISTED_DIRS: git's tracked and new (not ignored) files,
  or, outside a git checkout, every such file on disk."""
  try:
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard",
                          "--", *LISTED_DIRS], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout.split()
  except (OSError, subprocess.CalledProcessError):
    out = [os.path.relpath(os.path.join(folder, name), ROOT)
           for top in LISTED_DIRS
           for folder, _, names in os.walk(os.path.join(ROOT, top)) for name in names]
  return sorted(path for path in set(out)
                if path.endswith(SUFFIXES) and os.path.isfile(os.path.join(ROOT, path)))


def workspace_bullets() -> dict[str, tuple[int, str | None]]:
  """{path: (line number, directory of the heading it is under)} of WORKSPACE.md's bullets."""
  bullets, heading = {}, None
  with open(WORKSPACE, encoding="utf-8") as f:
    for number, line in enumerate(f, 1):
      if line.startswith("#"):
        match = HEADING.match(line)
        heading = match.group(1) if match else None
      elif match := BULLET.match(line):
        bullets[match.group(1)] = (number, heading)
  return bullets


def test_every_source_file_has_its_bullet():
  bullets = workspace_bullets()
  headings = {heading for _, heading in bullets.values()}
  missing = [path for path in source_files() if path not in bullets]
  lines = [f"under the heading \"### `{os.path.dirname(path)}/`\""
           + ("" if os.path.dirname(path) in headings else " (a new heading)")
           + f": - `{path}` — <its job, one line>" for path in missing]
  assert not missing, ("WORKSPACE.md has no bullet for these files; add\n  "
                       + "\n  ".join(lines))


def test_every_bullet_is_under_its_directory():
  misplaced = [f"line {number}: `{path}` is under "
               + (f"`{heading}/`" if heading else "no `### `dir/`` heading")
               + f"; move it under \"### `{os.path.dirname(path)}/`\""
               for path, (number, heading) in workspace_bullets().items()
               if heading != os.path.dirname(path)]
  assert not misplaced, "WORKSPACE.md:\n  " + "\n  ".join(misplaced)


def test_every_path_named_exists():
  gone = []
  with open(WORKSPACE, encoding="utf-8") as f:
    for number, line in enumerate(f, 1):
      for path in PATH.findall(line):
        if "*" not in path and not os.path.exists(os.path.join(ROOT, path)):
          gone.append(f"line {number}: {path}")
  assert not gone, ("WORKSPACE.md names paths that do not exist (rename or remove them):\n  "
                    + "\n  ".join(gone))
