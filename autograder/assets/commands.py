"""``autograder assets``: fetch, lock and verify the models and data the assignments declare.

    autograder assets fetch --profile lite|full [--assignment ID] [--cache DIR] [--build]
    autograder assets lock [--check]        the committed assets.lock.json of the lite assets
    autograder assets verify [--cache DIR]  re-hash the cache against its lock
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from autograder.assets.cache import assets_cache_dir
from autograder.assets.declared import PROFILES, AssetDeclarationError, select_declared
from autograder.assets.fetch import fetch_assets, lite_lock
from autograder.assets.lock import LOCK_NAME, lock_text, merged, read_lock, verify_against_lock, write_lock
from autograder.layout import CourseLayout

console = Console(stderr=True)


def register(sub) -> None:
    """Add the ``assets`` command to the CLI's subparsers."""
    p_assets = sub.add_parser("assets", help="fetch, lock and verify the models and data assignments declare")
    assets_sub = p_assets.add_subparsers(dest="assets_command", required=True)

    p_fetch = assets_sub.add_parser("fetch", help="download or build declared assets into the cache, and lock them")
    p_fetch.add_argument("--profile", choices=PROFILES, required=True)
    p_fetch.add_argument("--assignment", help="assignment id or unique prefix (default: all)")
    p_fetch.add_argument("--cache", type=Path, help="asset cache (default: $AUTOGRADER_ASSETS or ~/.cache/autograder/assets)")
    p_fetch.add_argument("--build", action="store_true", help="run the sections' build scripts (train_lite.py) first")
    p_fetch.set_defaults(func=cmd_fetch)

    p_lock = assets_sub.add_parser("lock", help=f"write the course's {LOCK_NAME} (the lite assets, hashed)")
    p_lock.add_argument("--check", action="store_true", help=f"write nothing; exit 1 if {LOCK_NAME} is stale")
    p_lock.set_defaults(func=cmd_lock)

    p_verify = assets_sub.add_parser("verify", help="re-hash the cache's files against its lock")
    p_verify.add_argument("--cache", type=Path, help="asset cache (default: $AUTOGRADER_ASSETS or ~/.cache/autograder/assets)")
    p_verify.set_defaults(func=cmd_verify)


def cmd_fetch(args: argparse.Namespace, layout: CourseLayout) -> int:
    try:
        declared = select_declared(layout.source, args.assignment)
    except AssetDeclarationError as exc:
        console.print(f"[red]error:[/red] {escape(str(exc))}")
        return 2
    cache = assets_cache_dir(args.cache)
    report = fetch_assets(
        declared, args.profile, cache, layout.root, build=args.build, log=lambda line: console.print(escape(line))
    )
    lock_path = cache / LOCK_NAME
    write_lock(lock_path, merged(read_lock(lock_path), report.fetched))
    console.print(f"{len(report.fetched)} asset(s) of profile {args.profile} in {cache}, locked in {lock_path}")
    if report.problems:
        console.print(f"[red]{len(report.problems)} asset(s) could not be fetched:[/red]")
        for line in report.problems:
            console.print(f"  {escape(line)}")
        return 1
    return 0


def cmd_lock(args: argparse.Namespace, layout: CourseLayout) -> int:
    path = layout.root / LOCK_NAME
    text = lock_text(lite_lock(select_declared(layout.source, None), layout.root))
    if args.check:
        if not path.is_file() or path.read_text() != text:
            console.print(f"[red]{path} is out of date with the lite assets;[/red] run `autograder assets lock` and commit it.")
            return 1
        console.print(f"{path} is up to date.")
        return 0
    path.write_text(text)
    console.print(f"wrote {path}")
    return 0


def cmd_verify(args: argparse.Namespace, layout: CourseLayout) -> int:
    cache = assets_cache_dir(args.cache)
    assets = read_lock(cache / LOCK_NAME)
    if not assets:
        console.print(f"[red]no assets locked in {cache}[/red]; run `autograder assets fetch --profile lite` first")
        return 1
    problems = verify_against_lock(cache, assets)
    for line in problems:
        console.print(f"[red]{escape(line)}[/red]")
    n_files = sum(len(a.files) for a in assets)
    if problems:
        console.print(f"{len(problems)} of {n_files} file(s) differ from {cache / LOCK_NAME}; fetch again to repair them")
        return 1
    console.print(f"{len(assets)} asset(s), {n_files} file(s) match {cache / LOCK_NAME}")
    return 0
