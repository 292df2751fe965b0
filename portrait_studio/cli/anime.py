"""``anime``: photo to anime picture (AnimeGANv2), written as a PNG with its settings."""

from __future__ import annotations

import argparse
from pathlib import Path

from portrait_studio.cli import add_command
from portrait_studio.config import Settings
from portrait_studio.errors import InputError
from portrait_studio.media.images import load_image
from portrait_studio.media.outputs import save_png
from portrait_studio.stylize.anime import DEFAULT_STYLE, MODES, STYLES, anime_portrait


def run_anime(args: argparse.Namespace, settings: Settings) -> int:
    out = Path(args.out)
    if out.suffix.lower() != ".png":
        raise InputError(f"--out {out}: the output is a PNG; give a file name ending in .png.")
    photo = load_image(
        Path(args.image), max_pixels=settings.max_image_pixels, max_bytes=settings.max_upload_mb * 1024 * 1024
    )
    result = anime_portrait(photo.image, settings, style=args.style, mode=args.mode, size=args.size)
    print(save_png(result.image, out, result.metadata))
    for warning in [*photo.warnings, *result.warnings]:
        print(f"warning: {warning}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(subparsers, "anime", run_anime, "turn a photo into an anime picture (AnimeGANv2)",
                         uses_device=True)
    parser.add_argument("image", help="input photo")
    parser.add_argument("--out", required=True, help="output PNG file")
    parser.add_argument("--style", default=DEFAULT_STYLE, choices=STYLES)
    parser.add_argument(
        "--mode", default="face", choices=MODES,
        help="face: align and stylize the largest face; full: stylize the whole picture",
    )
    parser.add_argument("--size", type=int, default=512, help="output side (face) or long side (full), pixels")
