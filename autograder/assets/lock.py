"""The asset lock: for every asset, every file with its size, sha256, source (and hub revision).

Two lock files have this format:

* ``<cache>/assets.lock.json``: what ``autograder assets fetch`` put in the cache;
  ``require_asset`` reads it to find an asset, ``autograder assets verify`` re-hashes against it;
* ``assets.lock.json`` at the course root, committed: the ``lite`` assets as the
  course ships them (``autograder assets lock`` writes it, ``--check`` compares).

The JSON is sorted and carries no timestamps, so an unchanged course writes
the same bytes.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from autograder.assets.loading import sha256_file

LOCK_NAME = "assets.lock.json"
LOCK_VERSION = 1
# Written by huggingface_hub's snapshot_download(local_dir=...) next to the files: bookkeeping, not the asset.
IGNORED_PARTS = {".cache", "__pycache__"}


@dataclass(frozen=True)
class LockedFile:
    path: str  # relative to the asset's folder, with "/" separators
    size: int
    sha256: str
    source: str  # where the file came from: a path in the course, or hf://<repo>@<revision>/<file>


@dataclass(frozen=True)
class LockedAsset:
    assignment: str
    profile: str
    name: str
    kind: str  # "local" or a HubAsset kind
    source: str  # the section folder (relative to the course root) or the hub repo id
    revision: str | None  # the hub commit the files were taken at; None for local assets
    path: str  # the asset's folder, relative to the cache root
    files: tuple[LockedFile, ...]

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.profile, self.assignment, self.name)


def folder_files(folder: Path) -> list[Path]:
    """The asset's files under ``folder``, sorted, without download bookkeeping."""
    return sorted(
        p for p in folder.rglob("*")
        if p.is_file() and not IGNORED_PARTS.intersection(p.relative_to(folder).parts)
    )


def hash_folder(folder: Path, source_of) -> tuple[LockedFile, ...]:
    """One :class:`LockedFile` per file under ``folder``; ``source_of(relative path)`` says where it came from."""
    files = []
    for p in folder_files(folder):
        rel = p.relative_to(folder).as_posix()
        files.append(LockedFile(path=rel, size=p.stat().st_size, sha256=sha256_file(p), source=source_of(rel)))
    return tuple(files)


def read_lock(path: Path) -> list[LockedAsset]:
    """The assets recorded in a lock file; an empty list when there is none."""
    if not path.is_file():
        return []
    data = json.loads(path.read_text())
    if data.get("version") != LOCK_VERSION:
        raise ValueError(f"{path}: lock version {data.get('version')!r}, expected {LOCK_VERSION}; fetch again to rewrite it")
    return [
        LockedAsset(**{**raw, "files": tuple(LockedFile(**f) for f in raw["files"])})
        for raw in data.get("assets", [])
    ]


def lock_text(assets: list[LockedAsset]) -> str:
    ordered = sorted(assets, key=lambda a: a.key)
    return json.dumps({"version": LOCK_VERSION, "assets": [asdict(a) for a in ordered]}, indent=2) + "\n"


def write_lock(path: Path, assets: list[LockedAsset]) -> None:
    """Write atomically: a reader (a grader starting up) never sees half a lock."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(lock_text(assets))
    os.replace(tmp, path)


def merged(old: list[LockedAsset], new: list[LockedAsset]) -> list[LockedAsset]:
    """``old`` with every asset of ``new`` added or replaced (same profile, assignment and name)."""
    by_key = {a.key: a for a in old}
    by_key.update({a.key: a for a in new})
    return list(by_key.values())


def verify_against_lock(cache: Path, assets: list[LockedAsset]) -> list[str]:
    """Re-hash every locked file under ``cache``; one line per missing, resized or changed file."""
    problems = []
    for asset in assets:
        folder = cache / asset.path
        for f in asset.files:
            path = folder / f.path
            label = f"{asset.assignment} {asset.profile} {asset.name}: {path}"
            if not path.is_file():
                problems.append(f"{label} is missing")
            elif path.stat().st_size != f.size:
                problems.append(f"{label} has {path.stat().st_size} bytes, the lock says {f.size}")
            elif sha256_file(path) != f.sha256:
                problems.append(f"{label} does not match its sha256 in the lock")
    return problems
