"""Where fetched assets live, and how a section's loader asks for one without ever going online.

The cache is one folder (default ``~/.cache/autograder/assets``; ``AUTOGRADER_ASSETS``
or ``--cache`` moves it)::

    <cache>/assets.lock.json                     what is here (see lock.py)
    <cache>/lite/<assignment>/<name>/            a section's own checkpoint folder
    <cache>/full/<assignment>/<name>/            an instructor-provided folder
    <cache>/hub/<model|dataset>/<hf_id>@<rev>/   a hub repo (shared by the assignments that declare it)
"""

from __future__ import annotations

import os
from pathlib import Path

from autograder.assets.declared import check_profile
from autograder.assets.lock import LOCK_NAME, LockedAsset, read_lock

CACHE_ENV = "AUTOGRADER_ASSETS"


class AssetMissingError(FileNotFoundError):
    """An asset is not in the cache; the message names the assignment, the file and the fetch command."""


def assets_cache_dir(cache: str | os.PathLike | None = None) -> Path:
    """``cache`` if given, else ``$AUTOGRADER_ASSETS``, else ``~/.cache/autograder/assets``."""
    if cache is not None:
        return Path(cache).expanduser()
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    return Path.home() / ".cache" / "autograder" / "assets"


def fetch_command(profile: str, assignment: str) -> str:
    return f"autograder assets fetch --profile {profile} --assignment {assignment}"


def _same_assignment(recorded: str, asked: str) -> bool:
    """Helpers name their assignment by its short id ("1.2"); the lock records the full one."""
    return recorded == asked or recorded.startswith(asked + "_")


def find_locked(cache: Path, assignment: str, name: str, profile: str) -> LockedAsset | None:
    for asset in read_lock(cache / LOCK_NAME):
        if asset.profile == profile and asset.name == name and _same_assignment(asset.assignment, assignment):
            return asset
    return None


def require_asset(assignment: str, name: str, profile: str = "full", cache: str | os.PathLike | None = None) -> Path:
    """The cache folder of asset ``name`` of ``assignment`` in ``profile``, after checking its files are there.

    Reads only the cache's lock and stats the files it lists (sizes, not hashes:
    ``autograder assets verify`` re-hashes). Never touches the network: when
    anything is missing it raises :class:`AssetMissingError` with the exact
    command that fetches it.
    """
    root = assets_cache_dir(cache)
    command = fetch_command(profile, assignment)

    def missing(what: str) -> AssetMissingError:
        return AssetMissingError(
            f"assignment {assignment} needs its {profile} asset {name!r}, but {what}.\n"
            f"Fetch it first (this needs the network; grading never downloads, HF_HUB_OFFLINE=1):\n"
            f"    {command}\n"
            f"The asset cache is {root} (change it with --cache or ${CACHE_ENV})."
        )

    try:
        asset = find_locked(root, assignment, name, profile)
    except (ValueError, KeyError, TypeError) as exc:  # a lock from another version, or damaged
        raise missing(f"the cache's lock {root / LOCK_NAME} cannot be read ({exc})") from exc
    if asset is None:
        raise missing(f"the cache {root} has no record of it ({root / LOCK_NAME} lists no such asset)")
    folder = root / asset.path
    for f in asset.files:
        path = folder / f.path
        if not path.is_file():
            raise missing(f"the file {path} is missing")
        if path.stat().st_size != f.size:
            raise missing(f"the file {path} is incomplete ({path.stat().st_size} of {f.size} bytes)")
    return folder


def profile_folder(profile: str, *, assignment: str, lite: Path, full_env: str, full_local: Path, name: str = "model") -> Path:
    """A section's model folder for ``profile``, the same rule for every section with an instructor-provided full model.

    lite: the shipped folder. full: ``$full_env`` when set (even if it is wrong: the
    loader then says so, naming the variable), else ``full_local`` when it holds a
    config.json, else the asset cache (:func:`require_asset`; never a download).
    """
    if check_profile(profile) == "lite":
        return lite
    if os.environ.get(full_env):
        return Path(os.environ[full_env])
    if (full_local / "config.json").is_file():
        return full_local
    return require_asset(assignment, name, "full")
