"""``stylize``: prompt (or preset) to PNG files."""

from __future__ import annotations

import argparse
from pathlib import Path

from portrait_studio.cli import add_command
from portrait_studio.config import Settings
from portrait_studio.media.outputs import save_png
from portrait_studio.models.manager import SCHEDULERS, ModelManager
from portrait_studio.stylize.generate import GenerateRequest, generate


def _print_progress(fraction: float, message: str = "") -> None:
    print(f"\r[{fraction:6.1%}] {message:40}", end="", flush=True)


def run_stylize(args: argparse.Namespace, settings: Settings) -> int:
    manager = ModelManager(settings)
    request = GenerateRequest(
        prompt=args.prompt, negative_prompt=args.negative, seed=args.seed, steps=args.steps,
        guidance=args.guidance, width=args.width, height=args.height, n=args.n, sampler=args.sampler,
    )
    result = generate(manager, request, progress=_print_progress)
    print()
    out = Path(args.out)
    for item in result.images:
        path = save_png(item.image, out / f"stylize-{item.seed}.png", item.metadata)
        print(path)
    for warning in result.warnings:
        print(f"warning: {warning}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(subparsers, "stylize", run_stylize, "generate portraits from a prompt")
    parser.add_argument("--prompt", required=True)
    parser.add_argument("--negative", default="")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--n", type=int, default=1, help="number of images")
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--guidance", type=float, default=7.0)
    parser.add_argument("--width", type=int, default=None)
    parser.add_argument("--height", type=int, default=None)
    parser.add_argument("--sampler", default="DPM++ 2M Karras", choices=list(SCHEDULERS))
    parser.add_argument("--out", required=True, help="output directory")
