"""Helpers for the tests that check a section's hidden tests (the variants live in the package)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import nbformat

from autograder.build.variants import Variant, apply_variant, load_variants  # noqa: F401 - re-exported


def write(nb: nbformat.NotebookNode, path: Path) -> Path:
    path.write_text(nbformat.writes(nb))
    return path


MUTANTS_REQUIRED, ALTERNATIVES_REQUIRED = 2, 1  # per exercise (SECTION_DONE.md, points 7 and 8)


def required_variants(variants: list[Variant]) -> list[Variant]:
    """Each exercise's first two mutants and first alternative, in variants.toml's order: what every test
    run grades. The rest are graded with ``--all-variants``."""
    wanted = {"mutant": MUTANTS_REQUIRED, "alternative": ALTERNATIVES_REQUIRED}
    taken: dict[tuple[str, str], int] = {}
    required = []
    for v in variants:
        key = (v.kind, v.exercise)
        if taken.get(key, 0) < wanted[v.kind]:
            taken[key] = taken.get(key, 0) + 1
            required.append(v)
    return required


def import_fresh(monkeypatch, folder: Path, module: str):
    """``module`` imported anew from ``folder`` (a section's helpers or training script), so that the test's
    monkeypatched environment (profile, asset cache) applies to it; the path goes when the test ends."""
    monkeypatch.syspath_prepend(str(folder))
    sys.modules.pop(module, None)
    return importlib.import_module(module)
