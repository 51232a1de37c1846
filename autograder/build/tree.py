"""A directory as a ``{relative path: bytes}`` mapping: read, compare, replace atomically."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

SKIPPED_PARTS = {"__pycache__", ".ipynb_checkpoints"}


def read_tree(root: Path) -> dict[str, bytes]:
    if not root.is_dir():
        return {}
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not SKIPPED_PARTS & set(p.relative_to(root).parts)
    }


def diff_tree(root: Path, files: dict[str, bytes]) -> list[str]:
    """How ``root`` differs from ``files``, one line per path (empty when equal)."""
    actual = read_tree(root)
    lines = [f"missing   {root / rel}" for rel in sorted(set(files) - set(actual))]
    lines += [f"unexpected {root / rel}" for rel in sorted(set(actual) - set(files))]
    lines += [f"modified  {root / rel}" for rel in sorted(set(files) & set(actual)) if files[rel] != actual[rel]]
    return lines


def write_tree(root: Path, files: dict[str, bytes]) -> None:
    """Make ``root`` hold exactly ``files``: written beside it, then swapped in.

    A crash half-way leaves the old tree in place, never a mix of old and new.
    """
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{root.name}.", dir=root.parent))
    try:
        for rel, data in files.items():
            path = staging / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        old = None
        if root.exists():
            old = root.parent / f".{root.name}.old-{os.getpid()}"
            os.rename(root, old)
        os.rename(staging, root)
        if old is not None:
            shutil.rmtree(old)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
