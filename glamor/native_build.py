"""Which C++/CUDA sources the compiled extension `glamor._C` was built from.

An editable install (`pip install -e .`, what `make build` does) does not rebuild the extension
when csrc/ changes: after a `git pull` or an edit of the kernels, Python code of one version
would call the ops of another (a changed signature fails at the call, a changed behaviour is
silent). So the build (setup.py) writes a digest of the sources it compiled beside the
extension (`_C.sources.json`), and `glamor.ops` compares it with the checkout's csrc/ at import
and warns, naming the rebuild, when they differ. An installed wheel has no csrc/ beside it and
an extension built before these stamps has none: neither is checked.

This module imports nothing of glamor's or torch's: setup.py loads it by path.

Example:
    >>> from pathlib import Path
    >>> stale_reason(Path("/nonexistent/glamor")) is None  # no checkout there: nothing to compare
    True
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path

# The sources of each kind of build (relative to the project root), headers included.
CPU_SOURCES = ("csrc/*.cpp", "csrc/*.h", "csrc/cpu/*.cpp", "csrc/cpu/*.h")
CUDA_SOURCES = CPU_SOURCES + ("csrc/cuda/*.cpp", "csrc/cuda/*.h", "csrc/cuda/*.cu", "csrc/cuda/*.cuh")
STAMP = "_C.sources.json"  # beside the extension, in the glamor package folder


def files(root: Path, patterns: Iterable[str]) -> list[Path]:
    """The files under `root` that `patterns` (globs) match, in path order."""
    return sorted({p for pattern in patterns for p in Path(root).glob(pattern) if p.is_file()})


def digest(root: Path, patterns: Iterable[str]) -> str:
    """sha256 (hex) of the files under `root` that `patterns` (globs) match: their paths and
    contents, in path order."""
    h = hashlib.sha256()
    for path in files(root, patterns):
        h.update(path.relative_to(root).as_posix().encode() + b"\0")
        h.update(path.read_bytes() + b"\0")
    return h.hexdigest()


def write_stamp(package_dir: Path, root: Path, patterns: Iterable[str], built: str | None = None) -> Path:
    """Write the stamp of a build from `root`'s sources (`patterns`) into `package_dir`.
    `built`: their digest taken when the build started (default: now)."""
    patterns = list(patterns)
    path = Path(package_dir) / STAMP
    built = digest(root, patterns) if built is None else built
    path.write_text(json.dumps({"patterns": patterns, "digest": built}) + "\n")
    return path


def stale_reason(package_dir: Path) -> str | None:
    """Why the extension in `package_dir` (the glamor package folder) is out of date with the
    checkout around it, or None: up to date, or nothing to compare (no csrc/ beside the package,
    no stamp, an unreadable one)."""
    package_dir = Path(package_dir)
    root, stamp = package_dir.parent, package_dir / STAMP
    if not (root / "csrc").is_dir() or not stamp.is_file():
        return None
    try:
        saved = json.loads(stamp.read_text())
        patterns, built_from = list(saved["patterns"]), str(saved["digest"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if digest(root, patterns) == built_from:
        return None
    return (f"glamor._C was built from other C++/CUDA sources than {root / 'csrc'} holds now (edited, or a "
            f"`git pull`, since the build: an editable install does not rebuild it), so its ops may not be "
            f"the ones this code expects")
