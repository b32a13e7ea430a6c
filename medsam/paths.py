"""How paths are shown to people: never as absolute server paths.

Pages, endpoints, error messages and recorded commands show a path relative to the repository, or
under ``~`` for the home folder, or else by its name alone; a configured folder is named by the
variable that configures it (e.g. ``$MEDSAM_CHECKPOINTS``).
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def shown(path: str | os.PathLike) -> str:
    """``path`` as the UI may show it: relative to the repository (``../`` allowed next to it), under
    ``~``, or its name alone."""
    p = Path(path).expanduser()
    if not p.is_absolute():
        return p.as_posix()
    p = p.resolve()
    for base, prefix in ((REPO, ""), (Path.home(), "~/"), (REPO.parent, "../")):
        if p.is_relative_to(base) and base != Path("/"):
            rel = p.relative_to(base).as_posix()
            return (prefix + rel) if rel != "." else (prefix.rstrip("/") or ".")
    return p.name


def command_line(program: Sequence[str], argv: Sequence[str]) -> str:
    """A command as recorded with results: absolute paths in its arguments shown with ``shown``."""
    return shlex.join([*program, *(shown(a) if os.path.isabs(a) else a for a in argv)])
