"""What an exported assignment hides from students: the reference solution and the hidden tests.

A payload is plain JSON (sources and numbers, never pickles), compressed and
base64-encoded where it is embedded in a notebook cell.
"""

from __future__ import annotations

import base64
import hashlib
import json
import zlib
from typing import Any

from autograder.grade.bundle import Bundle
from autograder.testing import collect

FORMAT = 1


def hidden_payload(bundle: Bundle) -> dict[str, Any]:
    """The reference, the hidden tests and each test case's points, from a grading bundle."""
    manifest = bundle.manifest
    hidden = {
        rel: (bundle.root / rel).read_text()
        for rel in sorted(manifest["files"])
        if rel.startswith("hidden/") and rel.endswith(".py")
    }
    tag = bundle.assignment.replace(".", "_").replace("-", "_")
    modules = [bundle.load_module(rel, f"autograder_export_{tag}_{i}") for i, rel in enumerate(hidden)]
    tests, _ = collect(modules)
    cases = []
    for ex in manifest["exercises"]:
        own = [t for t in tests if t.exercise == ex["name"]]
        total = sum(t.weight for t in own)
        cases += [
            {"exercise": ex["name"], "name": t.name, "points": float(ex["points"]) * t.weight / total} for t in own
        ]
    return {
        "format": FORMAT,
        "assignment": bundle.assignment,
        "bundle_hash": bundle.bundle_hash,
        "reference": (bundle.root / "reference.py").read_text(),
        "hidden": hidden,
        "exercises": [{"name": ex["name"], "points": float(ex["points"])} for ex in manifest["exercises"]],
        "cases": cases,
        "free_points": float(manifest.get("free_points", 0.0)),
        "seed": int(manifest.get("seed", 0)),
        "tolerances": manifest.get("tolerances", {}),
        "limits": manifest["limits"],
    }


def payload_id(payload: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def encode_payload(payload: dict[str, Any]) -> str:
    """Compact text for a notebook cell: base64 of zlib-compressed JSON, in 100-character lines."""
    text = base64.b64encode(zlib.compress(json.dumps(payload, sort_keys=True).encode(), 9)).decode()
    return "\n".join(text[i : i + 100] for i in range(0, len(text), 100))


def decode_payload(text: str) -> dict[str, Any]:
    payload = json.loads(zlib.decompress(base64.b64decode("".join(text.split()))))
    if payload.get("format") != FORMAT:
        raise ValueError(f"hidden-test payload format {payload.get('format')!r}; this autograder reads {FORMAT}")
    return payload
