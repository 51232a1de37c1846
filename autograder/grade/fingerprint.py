"""What grades an exercise, as one hash per exercise: so a test fix regrades only what it touches.

An exercise's fingerprint covers its own hidden tests and the fixtures they ask
for (followed through the fixtures' own arguments), its points, and everything
shared by every exercise: the reference solution, the student-side files, the
grading settings (tolerances, limits, seed), and whatever else the hidden-test
files hold besides tests and fixtures (helper functions, imports, constants).
Changing a shared part changes every fingerprint; the split errs on the side
of regrading too much, never too little.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from typing import Any, Callable

from autograder.testing import HiddenTest

# Exercise settings that change what a student reads, never a score.
_FEEDBACK_ONLY = ("hint", "show_expected")


def exercise_fingerprints(
    manifest: dict,
    hidden_sources: dict[str, str],
    tests: list[HiddenTest],
    fixtures: dict[str, Callable[..., Any]],
    run_settings: dict[str, Any],
) -> dict[str, str]:
    """Exercise name → sha256 of what grades it.

    ``hidden_sources`` maps each hidden-test file to its text; ``run_settings``
    holds what the batch adds (profile, device, the effective seed).
    """
    own_source: dict[int, str] = {}
    for fn in [t.fn for t in tests] + list(fixtures.values()):
        own_source[id(fn)] = _source(fn)
    shared = {
        "manifest": {
            k: v for k, v in manifest.items() if k not in ("bundle_hash", "exercises", "files", "answer_stubs")
        },
        "files": {rel: h for rel, h in manifest["files"].items() if not rel.startswith("hidden/")},
        "hidden_rest": {rel: _without(text, own_source.values()) for rel, text in sorted(hidden_sources.items())},
        "run": run_settings,
    }
    fingerprints = {}
    for ex in manifest["exercises"]:
        mine = [t for t in tests if t.exercise == ex["name"]]
        needed = _fixtures_needed([t.fn for t in mine], fixtures)
        content = {
            "shared": shared,
            "exercise": {k: v for k, v in ex.items() if k not in _FEEDBACK_ONLY},
            "answer_stubs": {cid: manifest.get("answer_stubs", {}).get(cid) for cid in ex.get("cells", [])},
            "tests": [[t.name, t.weight, own_source[id(t.fn)]] for t in mine],
            "fixtures": {name: own_source[id(fixtures[name])] for name in sorted(needed)},
        }
        fingerprints[ex["name"]] = hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()
    return fingerprints


def _source(fn: Callable[..., Any]) -> str:
    try:
        return inspect.getsource(fn)
    except (OSError, TypeError):  # no source to read: identify it by its code alone
        code = getattr(fn, "__code__", None)
        return repr(code.co_code if code else fn)


def _without(text: str, parts: Any) -> str:
    """A hidden-test file with every test and fixture cut out: what they share."""
    for part in sorted(parts, key=len, reverse=True):
        text = text.replace(part, "")
    return text


def _fixtures_needed(fns: list[Callable[..., Any]], fixtures: dict[str, Callable[..., Any]]) -> set[str]:
    needed: set[str] = set()
    todo = [p for fn in fns for p in inspect.signature(fn).parameters]
    while todo:
        name = todo.pop()
        if name in needed or name not in fixtures:
            continue  # built-ins (student, reference, seed, ...) are in the shared part
        needed.add(name)
        todo.extend(inspect.signature(fixtures[name]).parameters)
    return needed
