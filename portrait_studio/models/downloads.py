"""Fetch a list of roles with progress: the UI's "Download" button (the CLI's ``download`` prints instead)."""

from __future__ import annotations

from pathlib import Path

from portrait_studio.config import Settings
from portrait_studio.models import files as role_files
from portrait_studio.models.locator import ModelLocator, check_free_space
from portrait_studio.models.roles import get_role
from portrait_studio.progress import ProgressFn, no_progress


def missing_roles(settings: Settings, roles: list[str]) -> list[str]:
    locator = ModelLocator(settings)
    return [name for name in roles if not locator.is_available(name)]


def download_size_mb(settings: Settings, roles: list[str]) -> float:
    """What fetching ``roles`` costs at most (published sizes; files already here are skipped)."""
    locator = ModelLocator(settings)
    return sum(role_files.download_mb(get_role(name), locator.wants_fp16(name)) for name in roles)


def download_roles(settings: Settings, roles: list[str], progress: ProgressFn = no_progress) -> list[Path]:
    """Fetch ``roles`` (with the parts of other roles they need), checking the disk first; the paths."""
    locator = ModelLocator(settings)
    from huggingface_hub import constants

    check_free_space(", ".join(roles), Path(constants.HF_HUB_CACHE), download_size_mb(settings, roles))
    paths = []
    for index, name in enumerate(roles):
        progress(index / max(len(roles), 1), f"Downloading {name} ({index + 1} of {len(roles)})")
        paths.append(locator.path(name, download=True))
        if name in role_files.COMPANIONS:
            other, config_only = role_files.COMPANIONS[name]
            locator.path(other, download=True, config_only=config_only)
    progress(1.0, "Downloaded")
    return paths
