"""``download`` and ``make-tiny``: get weights for the default profile, or build the tiny ones."""

from __future__ import annotations

import argparse
from pathlib import Path

from portrait_studio.cli import add_command
from portrait_studio.config import Settings
from portrait_studio.errors import InputError, MissingWeightsError
from portrait_studio.models.locator import ModelLocator
from portrait_studio.models.roles import ROLES, get_role
from portrait_studio.models.tiny import make_tiny


def _role_list(raw: str | None, default: list[str]) -> list[str]:
    if not raw:
        return default
    names = [name.strip() for part in raw for name in part.split(",") if name.strip()]
    groups = {role.group for role in ROLES.values()}
    selected: list[str] = []
    for name in names:
        if name == "all":
            selected.extend(ROLES)
        elif name in groups:
            selected.extend(r.name for r in ROLES.values() if r.group == name)
        else:
            selected.append(get_role(name).name)
    return list(dict.fromkeys(selected))


def run_download(args: argparse.Namespace, settings: Settings) -> int:
    if settings.offline:
        raise InputError("download needs the network; drop --offline (and HF_HUB_OFFLINE).")
    essential = [r.name for r in ROLES.values() if r.essential]
    roles = _role_list(args.roles, essential)
    locator = ModelLocator(settings.replace(profile="default"))
    failed: list[MissingWeightsError] = []
    for name in roles:
        print(f"{name}: {locator.source_description(name)}")
        try:
            print(f"  -> {locator.path(name, download=True)}")
        except MissingWeightsError as exc:
            failed.append(exc)
            print(f"  failed: {exc}")
    if failed:
        raise MissingWeightsError(
            ", ".join(e.role for e in failed), "see above", "python -m portrait_studio download --roles "
            + ",".join(e.role for e in failed), f"{len(failed)} of {len(roles)} roles could not be fetched",
        )
    return 0


def run_list(args: argparse.Namespace, settings: Settings) -> int:
    locator = ModelLocator(settings)
    for role in ROLES.values():
        state = "present" if locator.is_available(role.name) else "missing"
        print(f"{role.name:32} {state:8} {role.group:8} {locator.source_description(role.name)}")
    return 0


def run_make_tiny(args: argparse.Namespace, settings: Settings) -> int:
    target = Path(args.dir) if args.dir else settings.tiny_dir
    built = make_tiny(target, _role_list(args.roles, list(ROLES)))
    print(f"wrote {len(built)} tiny random-weight models to {target}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    download = add_command(subparsers, "download", run_download, "download published weights for model roles")
    download.add_argument(
        "--roles", nargs="*", help="role names or groups (stylize, animate, faces, talk, all); default: essential roles"
    )
    add_command(subparsers, "models", run_list, "list model roles, their sources and whether they are present")
    tiny = add_command(subparsers, "make-tiny", run_make_tiny, "write tiny random-weight models for tests and demos")
    tiny.add_argument("dir", nargs="?", help="target directory (default: <home>/tiny-models)")
    tiny.add_argument("--roles", nargs="*", help="only these roles or groups")
