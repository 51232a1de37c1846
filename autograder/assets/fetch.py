"""Put what assignments declare into the asset cache, and lock it.

* a local folder (``assets/lite``, an instructor's ``assets/full``) is checked
  against its ``SHA256SUMS`` and copied; with ``build=True`` its build script
  (``assets/train_lite.py``) runs first;
* a hub repo is downloaded with ``huggingface_hub.snapshot_download`` at the
  commit its declared revision points to, and that commit is recorded.

The network is used here and nowhere else in the package.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from autograder.assets.declared import DeclaredAssets, HubAsset, LocalAsset
from autograder.assets.loading import SUMS_FILE, ChecksumError, verify_sha256sums
from autograder.assets.lock import LockedAsset, hash_folder

_COMMIT = re.compile(r"[0-9a-f]{40}")


@dataclass
class FetchReport:
    fetched: list[LockedAsset] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # one line each: what is missing and how to fix it


def _display(path: Path, course_root: Path) -> str:
    """A path relative to the course root where it is inside it (locks stay the same on every machine)."""
    try:
        return path.resolve().relative_to(course_root.resolve()).as_posix()
    except ValueError:
        return str(path)


# ----------------------------------------------------------------------------- local folders


def local_folder(declared: DeclaredAssets, asset: LocalAsset) -> Path:
    """The folder itself: ``$env`` when the declaration names one and it is set, else the section's path."""
    if asset.env and os.environ.get(asset.env):
        return Path(os.environ[asset.env])
    return declared.section_dir / asset.path


def lock_local(declared: DeclaredAssets, profile: str, asset: LocalAsset, folder: Path, course_root: Path) -> LockedAsset:
    source = _display(folder, course_root)
    return LockedAsset(
        assignment=declared.assignment, profile=profile, name=asset.name, kind=asset.kind, source=source,
        revision=None, path=f"{profile}/{declared.assignment}/{asset.name}",
        files=hash_folder(folder, lambda rel: f"{source}/{rel}"),
    )


def check_local(declared: DeclaredAssets, profile: str, asset: LocalAsset) -> Path:
    """The folder, verified; raises ``ChecksumError`` / ``FileNotFoundError`` saying what to do."""
    folder = local_folder(declared, asset)
    fix = (f"cd {declared.section_dir} && python {asset.build}" if asset.build
           else f"replace {folder} with a good copy")
    if not folder.is_dir() or not any(folder.iterdir()):
        where = f"put it in {declared.section_dir / asset.path}" + (f" or set {asset.env}" if asset.env else "")
        how = f"build it with `{fix}` (or `autograder assets fetch --build`)" if asset.build else "it is not downloadable"
        raise FileNotFoundError(f"{declared.assignment} {profile} {asset.name}: no folder {folder}; {how}; {where}")
    if (folder / SUMS_FILE).is_file():
        verify_sha256sums(folder, fix)
    elif profile == "lite":
        raise ChecksumError(f"{declared.assignment} lite {asset.name}: {folder / SUMS_FILE} is missing; rebuild: {fix}")
    return folder


def build_local(declared: DeclaredAssets, asset: LocalAsset) -> None:
    """Run the asset's build script in its section (this trains a model: minutes)."""
    subprocess.run([sys.executable, asset.build], cwd=declared.section_dir, check=True)


def copy_folder(source: Path, target: Path) -> None:
    """Replace ``target`` by a copy of ``source``, never leaving a half-copied folder under the final name."""
    tmp = target.with_name(target.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(source, tmp)
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)


# ----------------------------------------------------------------------------- hub repos


def resolve_revision(asset: HubAsset) -> str:
    """The commit ``asset.revision`` (a branch, tag or commit) points to now: a network call."""
    if _COMMIT.fullmatch(asset.revision):
        return asset.revision
    import huggingface_hub

    return huggingface_hub.HfApi().repo_info(asset.hf_id, repo_type=asset.repo_type, revision=asset.revision).sha


def download(asset: HubAsset, revision: str, target: Path) -> None:
    import huggingface_hub

    target.mkdir(parents=True, exist_ok=True)
    huggingface_hub.snapshot_download(
        repo_id=asset.hf_id, repo_type=asset.repo_type, revision=revision,
        allow_patterns=list(asset.files) or None, local_dir=str(target),
    )


def hub_path(asset: HubAsset) -> str:
    return f"hub/{asset.repo_type}/{asset.hf_id}@{asset.revision}"


def fetch_hub(declared: DeclaredAssets, profile: str, asset: HubAsset, cache: Path) -> LockedAsset:
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        raise RuntimeError(
            f"{declared.assignment} {profile} {asset.name}: HF_HUB_OFFLINE is set, so {asset.hf_id} cannot be "
            "downloaded; fetch on a machine with the network (unset HF_HUB_OFFLINE), then grade offline"
        )
    commit = resolve_revision(asset)
    target = cache / hub_path(asset)
    download(asset, commit, target)
    files = hash_folder(target, lambda rel: f"hf://{asset.hf_id}@{commit}/{rel}")
    if not files:
        raise FileNotFoundError(f"{declared.assignment} {profile} {asset.name}: {asset.hf_id} gave no files "
                                f"(allow-patterns {list(asset.files)})")
    return LockedAsset(
        assignment=declared.assignment, profile=profile, name=asset.name, kind=asset.kind, source=asset.hf_id,
        revision=commit, path=hub_path(asset), files=files,
    )


def undeclared_tokenizer(declared: DeclaredAssets, asset: HubAsset, folder: Path) -> str | None:
    """A problem line when a fetched TransformerLens-format model names a tokenizer the assignment does not declare.

    Such a repo's ``config.json`` says which hub tokenizer it was trained with;
    grading offline needs that tokenizer in the cache too. Checked against what
    the hub actually served, so a wrong id in ``assignment.toml`` shows at fetch
    time, on a machine with the network, not at grading time.
    """
    if asset.kind != "transformer_lens" or not (folder / "config.json").is_file():
        return None
    wanted = json.loads((folder / "config.json").read_text()).get("tokenizer_name")
    hub_ids = {a.hf_id for assets in declared.profiles.values() for a in assets if isinstance(a, HubAsset)}
    if not wanted or wanted in hub_ids:
        return None
    return (f"{declared.assignment} {asset.name}: its config.json names the tokenizer {wanted!r}, which "
            f"{declared.assignment} does not declare; add it to assignment.toml:\n"
            f"    [[assets.full.models]]\n    name = \"{asset.name}-tokenizer\"\n    hf_id = \"{wanted}\"\n    kind = \"hf\"")


# ----------------------------------------------------------------------------- the whole job


def fetch_assets(
    declared: list[DeclaredAssets], profile: str, cache: Path, course_root: Path, *, build: bool = False,
    log: Callable[[str], None] = lambda line: None,
) -> FetchReport:
    """Fetch (or build) every asset of ``profile`` the assignments declare into ``cache``.

    Goes on past an asset that fails, so one missing instructor folder does not
    block the rest; the report lists each failure with its fix.
    """
    report = FetchReport()
    for d in declared:
        for asset in d.for_profile(profile):
            label = f"{d.assignment} {profile} {asset.name}"
            try:
                if isinstance(asset, LocalAsset):
                    if build and asset.build:
                        log(f"{label}: building with {asset.build}")
                        build_local(d, asset)
                    folder = check_local(d, profile, asset)
                    locked = lock_local(d, profile, asset, folder, course_root)
                    copy_folder(folder, cache / locked.path)
                else:
                    log(f"{label}: downloading {asset.hf_id}@{asset.revision}")
                    locked = fetch_hub(d, profile, asset, cache)
                    missing_tokenizer = undeclared_tokenizer(d, asset, cache / locked.path)
                    if missing_tokenizer:
                        report.problems.append(missing_tokenizer)
            except Exception as exc:  # noqa: BLE001 - reported with its fix; the other assets still get fetched
                message = str(exc)
                report.problems.append(message if message.startswith(label) else f"{label}: {message}")
                continue
            report.fetched.append(locked)
            log(f"{label}: {len(locked.files)} file(s), {sum(f.size for f in locked.files):,} bytes")
    return report


def lite_lock(declared: list[DeclaredAssets], course_root: Path) -> list[LockedAsset]:
    """The lock of the course's own lite assets, as fetch would record them (for the committed lock)."""
    return [
        lock_local(d, "lite", asset, check_local(d, "lite", asset), course_root)
        for d in declared for asset in d.for_profile("lite") if isinstance(asset, LocalAsset)
    ]
