"""Helpers for the tests that check a section's hidden tests (the variants live in the package)."""

from __future__ import annotations

from pathlib import Path

import nbformat

from autograder.build.variants import Variant, apply_variant, load_variants  # noqa: F401 - re-exported


def write(nb: nbformat.NotebookNode, path: Path) -> Path:
    path.write_text(nbformat.writes(nb))
    return path
