"""``download`` and ``make-tiny``: get weights for the default profile, or build the tiny ones."""

from __future__ import annotations

import argparse
from pathlib import Path

from portrait_studio.cli import add_command
from portrait_studio.config import Settings
from portrait_studio.errors import InputError, MissingWeightsError
from portrait_studio.models import files as role_files
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
    from portrait_studio.models.doctor import size_text

    essential = [r.name for r in ROLES.values() if r.essential]
    roles = _role_list(args.roles, essential)
    locator = ModelLocator(settings.replace(profile="default"))
    total = sum(role_files.download_mb(ROLES[n], locator.wants_fp16(n)) for n in roles if not locator.is_available(n))
    print(f"{len(roles)} roles; at most {size_text(total)} to fetch (files already here are not fetched again)")
    failed: list[MissingWeightsError] = []
    for name in roles:
        print(f"{name}: {locator.source_description(name)}")
        try:
            print(f"  -> {locator.path(name, download=True)}")
            if name in role_files.COMPANIONS:
                other, config_only = role_files.COMPANIONS[name]
                print(f"  + {other} {'config' if config_only else ''}: "
                      f"{locator.path(other, download=True, config_only=config_only)}")
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
    """One line per role: state, group, download size, resolved revision, source (nothing is fetched)."""
    from portrait_studio.models.doctor import INCOMPLETE, MISSING, role_status, size_text

    locator = ModelLocator(settings)
    for role in ROLES.values():
        status = role_status(locator, role)
        state = {MISSING: "missing", INCOMPLETE: "incomplete"}.get(status.state, "present")
        size = size_text(role_files.download_mb(role, locator.wants_fp16(role.name)))
        if not role_files.size_confirmed(role):
            size = "~" + size
        print(f"{role.name:34} {state:10} {role.group:8} {size:>9}  {(status.revision or '-')[:12]:12} "
              f"{status.source}")
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
