"""``lora``: list, import, export, rename and delete likenesses in the registry."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from portrait_studio.cli import add_command
from portrait_studio.config import Settings
from portrait_studio.errors import MissingWeightsError
from portrait_studio.registry import (
    DEFAULT_OWNER,
    EXPORT_FORMATS,
    BaseShapes,
    LoraRegistry,
    base_shapes_from_model_dir,
)


def _registry(settings: Settings) -> LoraRegistry:
    return LoraRegistry(settings.registry_dir)


def _active_base_shapes(settings: Settings) -> BaseShapes | None:
    """Shapes of the active profile's base model when it is on disk (configs only, no weights read)."""
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    from portrait_studio.models.locator import ModelLocator

    # Building the tiny model on first use would draw progress bars into the one-line contract.
    diffusers_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()
    try:
        model_dir = ModelLocator(settings).path("base", download=False)
    except MissingWeightsError:
        return None
    return base_shapes_from_model_dir(model_dir)


def run_list(args: argparse.Namespace, settings: Settings) -> int:
    records = _registry(settings).list(args.owner)
    if args.json:
        print(json.dumps([record.to_dict() for record in records], indent=2, ensure_ascii=False))
        return 0
    if not records:
        print("no LoRAs yet")
    for record in records:
        trigger = f"trigger '{record.trigger}'" if record.trigger else "no trigger"
        noise = "  [random-weight test model]" if record.random_weights else ""
        what = "instant" if record.is_instant else f"rank {record.rank:<4}"
        print(f"{record.slug:28} {record.name:28} {record.source:8} {what:9} {trigger}{noise}")
    return 0


def run_import(args: argparse.Namespace, settings: Settings) -> int:
    shapes = _active_base_shapes(settings)
    record = _registry(settings).import_file(args.owner, Path(args.file), name=args.name, base_shapes=shapes)
    print(f"imported '{record.name}' as {record.slug}")
    if shapes is None:
        print("warning: base model not on disk, so the LoRA was not checked against its layer shapes", file=sys.stderr)
    return 0


def run_export(args: argparse.Namespace, settings: Settings) -> int:
    path = _registry(settings).export(args.owner, args.name, args.format, Path(args.out))
    print(path)
    return 0


def run_rename(args: argparse.Namespace, settings: Settings) -> int:
    record = _registry(settings).rename(args.owner, args.name, args.new_name)
    print(f"renamed to '{record.name}' ({record.slug})")
    return 0


def run_delete(args: argparse.Namespace, settings: Settings) -> int:
    registry = _registry(settings)
    record = registry.get(args.owner, args.name)
    registry.delete(args.owner, record.slug, undoable=False)
    print(f"deleted '{record.name}'")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    lora = add_command(
        subparsers, "lora", _missing_action, "manage likeness LoRAs: list, import, export, rename, delete"
    )
    actions = lora.add_subparsers(dest="lora_action", required=True, metavar="ACTION")

    def action(name: str, handler, help: str) -> argparse.ArgumentParser:  # noqa: ANN001
        parser = add_command(actions, name, handler, help)
        parser.add_argument("--owner", default=DEFAULT_OWNER, help=argparse.SUPPRESS)
        return parser

    listing = action("list", run_list, "list LoRAs")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    importing = action("import", run_import, "import a .safetensors LoRA (kohya/A1111/ComfyUI or diffusers format)")
    importing.add_argument("file")
    importing.add_argument("--name", default=None, help="display name (default: the file's title or stem)")
    exporting = action("export", run_export, "export a LoRA for A1111/ComfyUI (kohya) or diffusers")
    exporting.add_argument("name", help="slug or name")
    exporting.add_argument("--format", choices=EXPORT_FORMATS, default="kohya")
    exporting.add_argument("--out", required=True, help="output .safetensors file or folder")
    renaming = action("rename", run_rename, "rename a LoRA")
    renaming.add_argument("name", help="slug or name")
    renaming.add_argument("new_name")
    deleting = action("delete", run_delete, "delete a LoRA")
    deleting.add_argument("name", help="slug or name")


def _missing_action(args: argparse.Namespace, settings: Settings) -> int:
    return 2  # unreachable: argparse requires an action
