"""``import_fresh`` (tests/sections.py), which the section tests use to import a section's helpers: what it
imported and the path it added are gone when the test ends, so that a grader loaded later in the same pytest
process imports its bundle's copy of the helpers, not the source folder's."""

from __future__ import annotations

import sys

import pytest

from conftest import REPO
from sections import import_fresh

FOLDER = REPO / "source" / "1.5.1_balanced_brackets"


def test_import_fresh_undoes_its_import_and_its_path():
    sys.modules.pop("brackets_helpers", None)
    with pytest.MonkeyPatch.context() as patch:
        helpers = import_fresh(patch, FOLDER, "brackets_helpers")
        assert sys.modules["brackets_helpers"] is helpers and sys.path[0] == str(FOLDER)
        assert import_fresh(patch, FOLDER, "brackets_helpers") is not helpers  # anew each time
    assert "brackets_helpers" not in sys.modules
    assert str(FOLDER) not in sys.path


def test_import_fresh_restores_a_module_imported_before():
    stand_in = type(sys)("brackets_helpers")
    sys.modules["brackets_helpers"] = stand_in
    try:
        with pytest.MonkeyPatch.context() as patch:
            assert import_fresh(patch, FOLDER, "brackets_helpers") is not stand_in
        assert sys.modules["brackets_helpers"] is stand_in
    finally:
        sys.modules.pop("brackets_helpers", None)
