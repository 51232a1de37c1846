"""What an assignment declares it needs, per profile: one typed view of ``[assets.lite]`` / ``[assets.full]``.

``assignment.toml`` declares two kinds of asset::

    [assets.lite]
    model = "assets/lite"             # a folder of the section, with its SHA256SUMS
    build = "assets/train_lite.py"    # what rebuilds it (`autograder assets fetch --build`)

    [assets.full]
    model = "assets/full"             # a folder nobody can download: the instructor puts it there,
    env = "GROKKING_FULL_DIR"         # ... or points this variable at one

    [[assets.full.models]]            # a repo on the Hugging Face hub
    hf_id = "gpt2"
    kind = "hf"                       # hf | transformer_lens | sae_lens | dataset | peft
    name = "gpt2"                     # what the section's loader asks for (default: hf_id)
    revision = "main"                 # a branch, tag or commit; the lock records the commit
    files = ["config.json", "*.safetensors"]   # optional allow-patterns

``[[assets.<profile>.saes]]``, ``[[assets.<profile>.datasets]]`` and ``[[assets.<profile>.adapters]]``
(PEFT adapters such as LoRA weights, applied to a declared model by the section's loader) take the same
keys (their ``kind`` defaults to ``sae_lens``, ``dataset`` and ``peft``). This module reads
the raw TOML itself, so it needs nothing else of the assignment to be valid.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

PROFILES = ("lite", "full")
HUB_KINDS = ("hf", "transformer_lens", "sae_lens", "dataset", "peft")
_LIST_KINDS = {"models": "hf", "saes": "sae_lens", "datasets": "dataset", "adapters": "peft"}
_LOCAL_KEYS = {"model", "env", "build"}
_HUB_KEYS = {"hf_id", "kind", "name", "revision", "files"}


def check_profile(profile: str) -> str:
    """``profile`` itself if it is one of :data:`PROFILES`; otherwise a ValueError that names them."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; expected one of {', '.join(map(repr, PROFILES))}")
    return profile


class AssetDeclarationError(ValueError):
    """An ``[assets.*]`` table is malformed; the message names the file, the key and the fix."""


@dataclass(frozen=True)
class LocalAsset:
    """A folder of the section (``assets/lite``) or one the instructor provides (``assets/full``)."""

    name: str
    path: str  # relative to the section's folder
    env: str | None = None  # an environment variable that may point at the folder instead
    build: str | None = None  # a script, relative to the section, that (re)creates the folder

    @property
    def kind(self) -> str:
        return "local"


@dataclass(frozen=True)
class HubAsset:
    """A Hugging Face hub repository (model, SAE release or dataset)."""

    name: str
    hf_id: str
    kind: str = "hf"
    revision: str = "main"
    files: tuple[str, ...] = ()

    @property
    def repo_type(self) -> str:
        return "dataset" if self.kind == "dataset" else "model"


Asset = LocalAsset | HubAsset


@dataclass(frozen=True)
class DeclaredAssets:
    """Everything one assignment declares."""

    assignment: str  # the assignment id
    section_dir: Path
    profiles: dict[str, tuple[Asset, ...]]

    def for_profile(self, profile: str) -> tuple[Asset, ...]:
        return self.profiles.get(profile, ())


def _local(path: Path, profile: str, table: dict) -> list[LocalAsset]:
    if "model" not in table:
        for key in ("env", "build"):
            if key in table:
                raise AssetDeclarationError(f"{path}: [assets.{profile}] has {key!r} but no 'model' folder")
        return []
    return [LocalAsset(
        name="model", path=str(table["model"]), env=table.get("env"), build=table.get("build"),
    )]


def _hub(path: Path, profile: str, list_name: str, entries) -> list[HubAsset]:
    where = f"{path}: [[assets.{profile}.{list_name}]]"
    if not isinstance(entries, list):
        raise AssetDeclarationError(f"{where} must be an array of tables, e.g. [[assets.{profile}.{list_name}]] hf_id = \"gpt2\"")
    assets = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or "hf_id" not in entry:
            raise AssetDeclarationError(f"{where} entry {i} needs an hf_id (a Hugging Face repo id such as \"gpt2\")")
        unknown = set(entry) - _HUB_KEYS
        if unknown:
            raise AssetDeclarationError(f"{where} entry {i}: unknown keys {sorted(unknown)}; known: {sorted(_HUB_KEYS)}")
        kind = str(entry.get("kind", _LIST_KINDS[list_name]))
        if kind not in HUB_KINDS:
            raise AssetDeclarationError(f"{where} entry {i}: kind must be one of {list(HUB_KINDS)}, not {kind!r}")
        assets.append(HubAsset(
            name=str(entry.get("name", entry["hf_id"])), hf_id=str(entry["hf_id"]), kind=kind,
            revision=str(entry.get("revision", "main")), files=tuple(str(f) for f in entry.get("files", ())),
        ))
    return assets


def parse_assets(path: Path, assignment: str, tables: dict) -> DeclaredAssets:
    """The typed view of an ``assets`` table (``tables`` is ``toml["assets"]``)."""
    unknown_profiles = set(tables) - set(PROFILES)
    if unknown_profiles:
        raise AssetDeclarationError(f"{path}: unknown asset profiles {sorted(unknown_profiles)}; known: {list(PROFILES)}")
    profiles: dict[str, tuple[Asset, ...]] = {}
    for profile, table in tables.items():
        unknown = set(table) - _LOCAL_KEYS - set(_LIST_KINDS)
        if unknown:
            raise AssetDeclarationError(
                f"{path}: [assets.{profile}] has unknown keys {sorted(unknown)}; "
                f"known: {sorted(_LOCAL_KEYS | set(_LIST_KINDS))}"
            )
        assets: list[Asset] = _local(path, profile, table)
        for list_name in _LIST_KINDS:
            if list_name in table:
                assets += _hub(path, profile, list_name, table[list_name])
        names = [a.name for a in assets]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise AssetDeclarationError(f"{path}: [assets.{profile}] names {repeated} more than once; give each a unique name")
        profiles[profile] = tuple(assets)
    return DeclaredAssets(assignment=assignment, section_dir=path.parent, profiles=profiles)


def read_declared(section_dir: Path) -> DeclaredAssets:
    """The assets ``section_dir/assignment.toml`` declares."""
    path = section_dir / "assignment.toml"
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise AssetDeclarationError(f"{path}: {exc}") from exc
    assignment = str(data.get("assignment", {}).get("id", section_dir.name))
    return parse_assets(path, assignment, dict(data.get("assets", {})))


def discover_declared(source_root: Path) -> list[DeclaredAssets]:
    """Every ``source/<id>/assignment.toml``'s assets, sorted by assignment id."""
    return sorted((read_declared(p.parent) for p in source_root.glob("*/assignment.toml")), key=lambda d: d.assignment)


def select_declared(source_root: Path, name: str | None) -> list[DeclaredAssets]:
    """All assignments (``name`` None), or the one whose id is ``name`` or starts with ``name`` uniquely."""
    every = discover_declared(source_root)
    if name is None:
        return every
    exact = [d for d in every if d.assignment == name or d.section_dir.name == name]
    if exact:
        return exact
    prefixed = [d for d in every if d.assignment.startswith(name)]
    if len(prefixed) == 1:
        return prefixed
    known = ", ".join(d.assignment for d in every) or "none"
    if prefixed:
        raise AssetDeclarationError(f"{name!r} matches several assignments: {', '.join(d.assignment for d in prefixed)}")
    raise AssetDeclarationError(f"no assignment {name!r} under {source_root} (known: {known})")
