"""``stylize``: a preset or prompt (optionally with your likeness, or on a template photo) to PNG files.

    python -m portrait_studio stylize [--likeness NAME] (--preset P | --prompt TEXT) [--template IMG]
                                      [--n N] [--seed S] [--best-of] [--restore 0.5] --out DIR
    python -m portrait_studio stylize --list-presets
"""

from __future__ import annotations

import argparse
from pathlib import Path

from portrait_studio.cli import add_command, print_progress
from portrait_studio.config import Settings
from portrait_studio.errors import InputError
from portrait_studio.models.manager import SCHEDULERS
from portrait_studio.stylize.request import CONTROLS


def _style_lora(text: str) -> tuple[str, float]:
    """``NAME`` or ``NAME:WEIGHT`` (weight defaults to 0.8)."""
    name, sep, weight = text.rpartition(":")
    if not sep:
        return text, 0.8
    try:
        return name, float(weight)
    except ValueError:
        raise argparse.ArgumentTypeError(f"style LoRA '{text}': the weight after ':' must be a number") from None


def _template(settings: Settings, value: str | None):  # noqa: ANN202
    if not value:
        return None
    from portrait_studio.stylize.templates import load_template, load_template_file

    path = Path(value).expanduser()
    if path.is_file():
        return load_template_file(settings, path)
    if "/" in value or "\\" in value:
        raise InputError(f"Template photo {value}: file not found.")
    return load_template(settings, value)


def run_stylize(args: argparse.Namespace, settings: Settings) -> int:
    if args.list_presets:
        from portrait_studio.stylize.presets import preset_catalogue

        presets, problems = preset_catalogue(settings)
        for preset in presets:
            print(f"{preset.id:20} {preset.title:24} {preset.description}")
        for problem in problems:
            print(f"warning: {problem}")
        return 0
    if not args.out:
        raise InputError("Say where the images go with --out DIR.")
    if not args.prompt and not args.preset:
        raise InputError("Choose a style with --preset NAME (see --list-presets) or write one with --prompt TEXT.")
    from portrait_studio.models.process_cache import process_manager
    from portrait_studio.stylize.outputs import save_images
    from portrait_studio.stylize.request import StylizeRequest
    from portrait_studio.stylize.service import stylize

    request = StylizeRequest(
        prompt=args.prompt or "", preset=args.preset, negative_prompt=args.negative, likeness=args.likeness,
        likeness_weight=args.likeness_weight, face_strength=args.face_strength, style_loras=list(args.style_lora or []),
        template=_template(settings, args.template), denoise=args.denoise, control=args.control, n=args.n,
        best_of=args.best_of, seed=args.seed, width=args.width, height=args.height, steps=args.steps,
        guidance=args.guidance, sampler=args.sampler, restore=args.restore,
    )
    result = stylize(process_manager(settings), request, settings, owner=args.owner, progress=print_progress)
    print()
    for path, item in zip(save_images(result.images, Path(args.out)), result.images, strict=True):
        score = f"  likeness {item.score:.3f}" if item.score is not None else ""
        print(f"{path}{score}")
    for warning in result.warnings:
        print(f"warning: {warning}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(subparsers, "stylize", run_stylize, "generate portraits from a preset or a prompt",
                         uses_device=True)
    parser.add_argument("--prompt", default=None, help="your own prompt; {subject} marks where the likeness goes")
    parser.add_argument("--preset", default=None, help="style preset id (see --list-presets)")
    parser.add_argument("--list-presets", action="store_true", help="list the style presets and exit")
    parser.add_argument("--negative", default="")
    parser.add_argument("--likeness", default=None, help="name of a likeness in your Library")
    parser.add_argument("--likeness-weight", type=float, default=0.9)
    parser.add_argument("--face-strength", type=float, default=None,
                        help="face adapter strength 0..2 (default 0.7 for an instant likeness, off for a trained "
                             "one; above 0 adds the adapter to a trained likeness)")
    parser.add_argument("--style-lora", action="append", type=_style_lora, metavar="NAME[:WEIGHT]",
                        help="a style LoRA from your Library (repeatable)")
    parser.add_argument("--template", default=None, help="template photo (a file, or a name in <home>/templates)")
    parser.add_argument("--denoise", type=float, default=0.6, help="template mode: how much the face is repainted")
    parser.add_argument("--control", choices=CONTROLS, default="canny", help="template mode ControlNets")
    parser.add_argument("--best-of", action="store_true", help="rank the images by likeness, best first")
    parser.add_argument("--restore", type=float, default=0.0, help="GFPGAN face restoration strength 0..1")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--n", type=int, default=1, help="number of images")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--guidance", type=float, default=None)
    parser.add_argument("--width", type=int, default=None)
    parser.add_argument("--height", type=int, default=None)
    parser.add_argument("--sampler", default=None, choices=list(SCHEDULERS))
    parser.add_argument("--owner", default="local", help=argparse.SUPPRESS)
    parser.add_argument("--out", default=None, help="output directory")
