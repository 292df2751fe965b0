"""``animate``: a prompt (optionally a likeness, camera motions, a start portrait) to MP4 + GIF + frames zip."""

from __future__ import annotations

import argparse
from pathlib import Path

from portrait_studio.animate.request import (
    INTERPOLATIONS,
    PORTRAIT_MODES,
    AnimateRequest,
    Likeness,
    parse_keyframes,
    parse_motion,
)
from portrait_studio.cli import add_command, print_progress
from portrait_studio.config import Settings
from portrait_studio.errors import InputError
from portrait_studio.models.roles import MOTION_LORAS


def _likeness(name: str, weight: float, settings: Settings, face_strength: float | None = None
              ) -> tuple[Likeness, str | None]:
    """A registry likeness by name (and its preset subject, "<trigger> <class word>", or "a person" for an
    instant likeness); a ``.safetensors`` path works too, because the CLI user owns this machine."""
    from portrait_studio.registry import DEFAULT_OWNER, LoraRegistry

    try:
        record = LoraRegistry(settings.registry_dir).get(DEFAULT_OWNER, name)
        if record.is_instant:
            return Likeness.from_record(record, weight, face_strength), f"a {record.class_word or 'person'}"
        subject = f"{record.trigger} {record.class_word}".strip() or None
        return Likeness.from_record(record, weight, face_strength), subject
    except InputError:
        if not name.endswith(".safetensors"):
            raise
    path = Path(name).expanduser()
    if path.is_file():
        return Likeness(path.resolve(), weight, path.stem), None
    raise InputError(f"Likeness '{name}' not found: give a registry name or a .safetensors LoRA file.")


def _from_preset(args: argparse.Namespace, settings: Settings, subject: str | None, default_size: int) -> list[str]:
    """Fill prompt, negative prompt and size from a Stylize preset (likeness as its subject); return notes."""
    from portrait_studio.stylize.presets import get_preset

    preset = get_preset(settings, args.preset)
    args.prompt = preset.render_prompt(subject)
    args.negative = args.negative or preset.negative_prompt
    if args.width is None and args.height is None:
        args.width, args.height = preset.size_for(default_size)
    return ["the preset's style LoRA is not applied in Animate"] if preset.style_lora else []


def run_animate(args: argparse.Namespace, settings: Settings) -> int:
    from portrait_studio.animate.service import animate
    from portrait_studio.media.images import load_image
    from portrait_studio.models.process_cache import process_manager

    out = Path(args.out)
    if out.suffix.lower() != ".mp4":
        raise InputError(f"--out must name an .mp4 file, got '{args.out}'.")
    def read(path: str | None):
        if not path:
            return None
        limits = dict(max_pixels=settings.max_image_pixels, max_bytes=settings.max_upload_mb << 20)
        return load_image(Path(path), **limits).image

    if args.to_image and not (args.from_image or args.from_likeness):
        raise InputError("--to needs --from: the end image is the last keyframe after the start portrait.")
    if args.from_likeness and (args.from_image or not args.likeness):
        raise InputError("--from-likeness uses the reference face of --likeness NAME; give --likeness, not --from.")
    init_image, end_image = read(args.from_image), read(args.to_image)
    manager = process_manager(settings)
    likeness, subject = (
        _likeness(args.likeness, args.likeness_weight, settings, args.face_strength) if args.likeness else (None, None)
    )
    notes = _from_preset(args, settings, subject, manager.sd_info().default_size) if args.preset else []
    if args.from_likeness and likeness is not None:
        init_image = likeness.reference_portrait()
    request = AnimateRequest(
        prompt=args.prompt,
        negative_prompt=args.negative,
        likeness=likeness,
        motions=[parse_motion(text) for text in args.motion],
        frames=args.frames,
        fps=args.fps,
        steps=args.steps,
        guidance=args.guidance,
        seed=args.seed,
        width=args.width,
        height=args.height,
        fast=args.fast,
        init_image=init_image,
        strength=args.strength,
        portrait_mode=args.mode,
        end_image=end_image,
        keyframe_strength=args.keyframe_strength,
        keyframes=parse_keyframes(args.keyframes) if args.keyframes else None,
        interpolate=args.interpolate,
    )
    result = animate(manager, request, out.parent, progress=print_progress, name=out.stem)
    print()
    for path in (result.mp4_path, result.gif_path, result.frames_zip):
        print(path)
    print(f"{result.frames} frames at {result.fps} fps, seed {result.seed}")
    for warning in notes + result.warnings:
        print(f"warning: {warning}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(subparsers, "animate", run_animate, "animate a portrait from a prompt (AnimateDiff)",
                         uses_device=True)
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--prompt")
    what.add_argument("--preset", help="a Stylize preset id (assets/styles or <home>/styles)")
    parser.add_argument("--negative", default="", help="default: the preset's negative prompt")
    parser.add_argument("--likeness", help="registry likeness name (or a .safetensors LoRA file)")
    parser.add_argument("--likeness-weight", type=float, default=0.8)
    parser.add_argument("--face-strength", type=float, default=None,
                        help="face adapter strength 0..2 (default 0.7 for an instant likeness, off for a LoRA)")
    parser.add_argument(
        "--motion", action="append", default=[], metavar="NAME[:WEIGHT]",
        help=f"camera motion LoRA, repeatable; one of {', '.join(MOTION_LORAS)}",
    )
    parser.add_argument("--frames", type=int, default=16, help="more than 16 uses FreeNoise sliding windows")
    parser.add_argument("--fps", type=int, default=8)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--guidance", type=float, default=7.5)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--width", type=int, default=None)
    parser.add_argument("--height", type=int, default=None)
    parser.add_argument("--fast", action="store_true", help="AnimateDiff-Lightning, 4 steps (needs its weights)")
    parser.add_argument("--from", dest="from_image", metavar="IMG", help="animate this portrait (keyframe 0)")
    parser.add_argument("--from-likeness", action="store_true", help="animate the --likeness's reference face")
    parser.add_argument("--to", dest="to_image", metavar="IMG", help="sparsectrl: end on this image (last keyframe)")
    parser.add_argument(
        "--mode", choices=PORTRAIT_MODES, default="sparsectrl",
        help="with --from: sparsectrl keyframes (v3 motion module, keeps the face) or video2video",
    )
    parser.add_argument("--keyframe-strength", type=float, default=1.0, help="sparsectrl: conditioning scale (0-2)")
    parser.add_argument("--keyframes", metavar="I[,J]", help="sparsectrl: keyframe frame numbers (default 0,last)")
    parser.add_argument("--strength", type=float, default=0.6, help="video2video: how far to move from it (0-1)")
    parser.add_argument("--interpolate", choices=INTERPOLATIONS, default="none", help="double the fps")
    parser.add_argument("--out", required=True, metavar="FILE.mp4", help="the GIF and frames zip go beside it")
