"""``python -m portrait_studio``: every tab's job from the command line.

Each command group lives in its own module with ``register(subparsers)``; handlers take
``(args, settings)`` and return an exit code. User errors print one line and exit 2; only bugs
print tracebacks.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Callable, Sequence

from portrait_studio.config import PROFILES, Settings, settings_from_env
from portrait_studio.errors import PortraitStudioError

COMMAND_MODULES = (
    "portrait_studio.cli.models",
    "portrait_studio.cli.faces",
    "portrait_studio.cli.stylize",
    "portrait_studio.cli.animate",
    "portrait_studio.cli.anime",
    "portrait_studio.cli.lora",
    "portrait_studio.cli.talk",
    "portrait_studio.cli.train",
    "portrait_studio.cli.instant",
    "portrait_studio.cli.doctor",
)

Handler = Callable[[argparse.Namespace, Settings], int]


def common_options() -> argparse.ArgumentParser:
    """Options every command accepts, before or after the command name."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--profile", choices=PROFILES, default=argparse.SUPPRESS,
        help="model profile: default (published weights) or tiny (random test models); env PORTRAIT_STUDIO_PROFILE",
    )
    common.add_argument("--home", default=argparse.SUPPRESS, help="data directory; env PORTRAIT_STUDIO_HOME")
    common.add_argument(
        "--offline", action="store_true", default=argparse.SUPPRESS, help="never touch the network"
    )
    return common


_COMMON = common_options()


def print_progress(fraction: float, message: str = "") -> None:
    """A one-line progress display for long commands (overwritten in place)."""
    print(f"\r[{fraction:6.1%}] {message:40}", end="", flush=True)


def add_command(
    subparsers: argparse._SubParsersAction, name: str, handler: Handler, help: str, *, uses_device: bool = False
) -> argparse.ArgumentParser:
    """``uses_device``: the command runs models, so it takes the device lease (waits while training runs)."""
    parser = subparsers.add_parser(name, help=help, description=help, parents=[_COMMON])
    parser.set_defaults(handler=handler, uses_device=uses_device, device_task=name)
    return parser


def run_handler(args: argparse.Namespace, settings: Settings) -> int:
    if not getattr(args, "uses_device", False):
        return int(args.handler(args, settings) or 0)
    from portrait_studio.models.lease import DeviceLease, Holder

    lease = DeviceLease.for_settings(settings)
    with lease.hold(Holder("cli", args.device_task), on_wait=lambda message: print(message, file=sys.stderr)):
        return int(args.handler(args, settings) or 0)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m portrait_studio", parents=[_COMMON])
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def settings_from_args(args: argparse.Namespace) -> Settings:
    offline = getattr(args, "offline", None) or None
    if offline:
        os.environ["HF_HUB_OFFLINE"] = "1"
    return settings_from_env(profile=getattr(args, "profile", None), home=getattr(args, "home", None), offline=offline)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=os.environ.get("PORTRAIT_STUDIO_LOG", "WARNING").upper(), format="%(message)s")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = settings_from_args(args)
        return run_handler(args, settings)
    except PortraitStudioError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
