"""``talk``: a portrait and a speech recording -> MP4 of the face speaking."""

from __future__ import annotations

import argparse
from pathlib import Path

from portrait_studio.cli import add_command, print_progress
from portrait_studio.config import Settings
from portrait_studio.errors import InputError


def run_talk(args: argparse.Namespace, settings: Settings) -> int:
    from portrait_studio.media.images import load_image
    from portrait_studio.talk import TalkOptions, talk

    out = Path(args.out)
    if out.suffix.lower() != ".mp4":
        raise InputError(f"Output file {out.name} must end in .mp4.")
    portrait = load_image(Path(args.portrait), max_pixels=settings.max_image_pixels).image
    options = TalkOptions(
        still=args.still, enhance=args.enhance, size=args.size, mode=args.mode, pose_style=args.pose_style,
        expression_scale=args.expression_scale, seed=args.seed, engine=args.engine, steps=args.steps,
        reference_video=Path(args.ref_video) if args.ref_video else None,
    )
    result = talk(portrait, Path(args.audio), out, settings, options, progress=print_progress)
    print()
    print(result.video_path)
    print(f"{result.frames} frames, {result.duration:.2f} s")
    for warning in result.warnings:
        print(f"warning: {warning}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(subparsers, "talk", run_talk, "make a portrait speak an audio recording (MP4)",
                         uses_device=True)
    parser.add_argument("--portrait", required=True, help="portrait image (one clearly visible face)")
    parser.add_argument("--audio", required=True, help="speech: wav, mp3, m4a, ogg or flac")
    parser.add_argument("--out", required=True, help="output .mp4 file")
    parser.add_argument("--still", action="store_true",
                        help="keep the head still; animate lips, eyes, expression (a --ref-video moves it anyway)")
    parser.add_argument("--enhance", action="store_true", help="restore faces with GFPGAN (slower)")
    parser.add_argument("--size", type=int, choices=(256, 512), default=256, help="renderer resolution")
    parser.add_argument("--mode", choices=("crop", "full"), default="crop",
                        help="crop: the face only; full: pasted back into the whole portrait")
    parser.add_argument("--pose-style", type=int, default=0, help="head-motion style, 0-45")
    parser.add_argument("--expression-scale", type=float, default=1.0, help="exaggerate (>1) or calm (<1) expressions")
    parser.add_argument("--seed", type=int, default=0, help="seed for head motion and blinks")
    parser.add_argument("--engine", choices=("sadtalker", "aniportrait"), default="sadtalker",
                        help="sadtalker: fast 3D-coefficient warping (default); aniportrait: video diffusion, "
                             "photorealistic, needs a large GPU (see `doctor`)")
    parser.add_argument("--steps", type=int, default=25, help="aniportrait: denoising steps")
    parser.add_argument("--ref-video", metavar="PATH",
                        help="a video of a face whose head motion and blinks the portrait copies (relative to "
                             "the video's first frame; replaces the head motion from speech, so --still and "
                             "--pose-style do not apply)")
