"""``instant``: a likeness from one or a few photos, without training (IP-Adapter Plus Face).

    python -m portrait_studio instant --name NAME PHOTO... [--json]

Exit 2 with the photo report (``--json``: on stdout) when no photo shows a usable face.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from portrait_studio.cli import add_command, print_progress
from portrait_studio.config import Settings
from portrait_studio.faces.report import NotEnoughFacesError
from portrait_studio.registry import DEFAULT_OWNER


def run_instant(args: argparse.Namespace, settings: Settings) -> int:
    from portrait_studio.instant.create import STORED_NOTE, create_instant
    from portrait_studio.models.manager import ModelManager

    def progress(fraction: float, message: str = "") -> None:
        if not args.json:
            print_progress(fraction, message)

    try:
        result = create_instant(ModelManager(settings), settings, args.name, [Path(p) for p in args.photos],
                                owner=args.owner, progress=progress)
    except NotEnoughFacesError as exc:
        if args.json:
            print(json.dumps(exc.report, indent=2))
        else:
            print(file=sys.stderr)
            for entry in exc.entries:
                print(f"{entry.status:8} {entry.name}: {entry.reason}", file=sys.stderr)
        raise
    record = result.record
    if args.json:
        print(json.dumps({**record.to_dict(include_paths=False), "faces_used": result.faces_used,
                          "warnings": result.warnings, "report": result.report}, indent=2, ensure_ascii=False))
        return 0
    print()
    print(f"instant likeness '{record.name}' ({record.slug}) from {result.faces_used} face(s)")
    print(STORED_NOTE)
    for warning in result.warnings:
        print(f"warning: {warning}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(subparsers, "instant", run_instant,
                         "create an instant likeness from photos (no training; IP-Adapter Plus Face)")
    parser.add_argument("photos", nargs="+", metavar="PHOTO", help="one or more photos of the same face")
    parser.add_argument("--name", required=True, help="name of the likeness in your Library")
    parser.add_argument("--json", action="store_true", help="print the new Library entry and photo report as JSON")
    parser.add_argument("--owner", default=DEFAULT_OWNER, help=argparse.SUPPRESS)
