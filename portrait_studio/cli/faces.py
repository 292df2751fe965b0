"""``faces prepare``: pick, align and score training photos, writing crops, masks and a report."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from portrait_studio.cli import add_command
from portrait_studio.config import FACE_BACKENDS, Settings
from portrait_studio.faces.report import NotEnoughFacesError


def run_prepare(args: argparse.Namespace, settings: Settings) -> int:
    from portrait_studio.faces.pipeline import prepare_faces

    if args.backend:
        settings = settings.replace(face_backend=args.backend)

    def progress(fraction: float, message: str = "") -> None:
        if not args.json and message:
            print(f"[{fraction:4.0%}] {message}", file=sys.stderr)

    try:
        result = prepare_faces(
            [Path(p) for p in args.photos], Path(args.out), settings, top_k=args.top_k, min_keep=args.min_keep,
            crop_size=args.crop_size, restore=not args.no_restore, white_background=args.white_background,
            min_face_px=args.min_face_px, progress=progress,
        )
    except NotEnoughFacesError as exc:
        if args.json:
            print(json.dumps(exc.report, indent=2))
        raise
    if args.json:
        print(json.dumps(result.report, indent=2))
    else:
        for entry in result.entries:
            print(f"{entry.status:8} {entry.name}: {entry.reason}")
        for warning in result.warnings:
            print(f"warning: {warning}")
        print(f"{len(result.kept)} crops, reference face and report in {result.out_dir}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    faces = subparsers.add_parser("faces", help="face tools for the likeness training set")
    commands = faces.add_subparsers(dest="faces_command", required=True, metavar="COMMAND")
    prepare = add_command(
        commands, "prepare", run_prepare,
        "detect, align, score and select face photos; write crops, masks, reference face and report.json",
        uses_device=True,
    )
    prepare.add_argument("photos", nargs="+", metavar="PHOTO", help="input photos (JPEG, PNG, WebP, HEIC...)")
    prepare.add_argument("--out", required=True, help="output folder (replaced atomically when it is a previous run)")
    prepare.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    prepare.add_argument("--top-k", type=int, default=15, help="keep at most this many faces (default 15)")
    prepare.add_argument("--min-keep", type=int, default=3, help="fail unless this many survive (default 3)")
    prepare.add_argument("--crop-size", type=int, default=512, help="aligned crop side in pixels (default 512)")
    prepare.add_argument("--min-face-px", type=int, default=64, help="smallest usable face, in pixels (default 64)")
    prepare.add_argument("--no-restore", action="store_true", help="do not restore small or soft faces with GFPGAN")
    prepare.add_argument("--white-background", action="store_true", help="put the crops on a white background")
    prepare.add_argument(
        "--backend", choices=FACE_BACKENDS, default=None, help="face backend (default: setting face_backend)"
    )
