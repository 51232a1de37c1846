"""A grading bundle on disk: validated before use, loaded into the trusted process."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
import sys
import tempfile
import types
from dataclasses import dataclass
from pathlib import Path

import nbformat

from autograder.grade.limits import Limits


class BundleError(RuntimeError):
    """The bundle is missing, stale or tampered with."""


def manifest_hash(manifest: dict) -> str:
    """The bundle's identity: every file's hash *and* every grading setting.

    Points, tolerances, limits and the seed live in the manifest, not in a
    file; a fixed tolerance must still count as a new bundle, or a resumed
    batch would keep grades given under the old one.
    """
    content = {k: v for k, v in manifest.items() if k != "bundle_hash"}
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class Bundle:
    root: Path
    manifest: dict

    @property
    def assignment(self) -> str:
        return self.manifest["assignment"]

    @property
    def bundle_hash(self) -> str:
        return self.manifest["bundle_hash"]

    def feedback_options(self) -> dict:
        """What the instructor set for students' feedback pages: hints, and exercises whose expected values show."""
        exercises = self.manifest["exercises"]
        return {
            "hints": {ex["name"]: ex["hint"] for ex in exercises if ex.get("hint")},
            "visible_expected": [ex["name"] for ex in exercises if ex.get("show_expected")],
        }

    @property
    def student_dir(self) -> Path:
        return self.root / "student"

    @property
    def limits(self) -> Limits:
        return Limits(**self.manifest["limits"])

    def release_notebook(self) -> nbformat.NotebookNode:
        return nbformat.read(self.root / self.manifest["notebook"], as_version=4)

    def answer_cell_ids(self) -> list[str]:
        ids: list[str] = []
        for ex in self.manifest["exercises"]:
            ids += [c for c in ex["cells"] if c not in ids]
        return ids

    def support_files(self) -> list[Path]:
        notebook = self.root / self.manifest["notebook"]
        return [p for p in sorted(self.student_dir.rglob("*")) if p.is_file() and p != notebook]

    def stage_support_files(self, home: Path) -> None:
        """Copy the support files (helpers, data: all but the notebook) into ``home``, which must not exist yet."""
        home.mkdir(parents=True)
        for path in self.support_files():
            dest = home / path.relative_to(self.student_dir)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, dest)

    def staged_support_dir(self) -> Path:
        """A fresh copy of the support files that sandboxed processes can read; the caller removes its parent."""
        home = Path(tempfile.mkdtemp(prefix="autograder-support-")) / "home"
        self.stage_support_files(home)
        home.parent.chmod(0o755)
        return home

    def leading_setup_cells(self) -> list[tuple[str, str]]:
        """(id, source) of the setup cells before the first answer cell: the same trusted code for every submission."""
        answer_ids, setup_ids = set(self.answer_cell_ids()), set(self.manifest["setup_cells"])
        leading = []
        for cell in self.release_notebook().cells:
            if cell["id"] in answer_ids:
                break
            if cell["id"] in setup_ids:
                leading.append((cell["id"], cell.source))
        return leading

    def load_module(self, relative: str, name: str) -> types.ModuleType:
        """Import a bundle file as a module, with the support files importable."""
        if str(self.student_dir) not in sys.path:
            sys.path.insert(0, str(self.student_dir))
        spec = importlib.util.spec_from_file_location(name, self.root / relative)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        return module


def load_bundle(root: Path) -> Bundle:
    """Read a bundle and check every file against the manifest's hashes."""
    manifest_path = root / "manifest.json"
    if not manifest_path.exists():
        raise BundleError(f"no grading bundle at {root}; run `autograder build` first")
    manifest = json.loads(manifest_path.read_text())
    expected = manifest.get("files", {})
    actual = {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in root.rglob("*")
        if p.is_file() and p.name != "manifest.json" and "__pycache__" not in p.parts
    }
    problems = [f"missing {rel}" for rel in sorted(set(expected) - set(actual))]
    problems += [f"unexpected {rel}" for rel in sorted(set(actual) - set(expected))]
    problems += [f"modified {rel}" for rel in sorted(set(expected) & set(actual)) if expected[rel] != actual[rel]]
    if manifest_hash(manifest) != manifest.get("bundle_hash"):
        problems.append("manifest hash does not match its contents")
    if problems:
        raise BundleError(
            f"the grading bundle at {root} does not match its manifest ({'; '.join(problems[:5])}). "
            "Rebuild it with `autograder build`."
        )
    return Bundle(root, manifest)
