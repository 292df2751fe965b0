"""Resolve a model role to files on disk: a per-role override, the tiny profile, or published weights.

Published weights come from the Hugging Face cache (``HF_HOME`` is respected) or, for release files,
from ``<home>/weights/<role>/``. When they are not there and cannot be fetched (offline, no network,
gated repo) the caller gets one :class:`MissingWeightsError` naming the role, the source and the
command that fetches it.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import tempfile
import threading
import urllib.request
from pathlib import Path

from portrait_studio.config import Settings
from portrait_studio.errors import MissingWeightsError
from portrait_studio.models.roles import HubSource, Role, UrlSource, get_role

RANDOM_WEIGHTS_MARKER = "RANDOM_WEIGHTS.json"
_tiny_lock = threading.Lock()


def download_command(role: str) -> str:
    return f"python -m portrait_studio download --roles {role}"


def is_random_weights(path: Path) -> bool:
    """True when ``path`` (a model dir, or a file inside one) was written by ``make-tiny``."""
    folder = path if path.is_dir() else path.parent
    return (folder / RANDOM_WEIGHTS_MARKER).is_file()


def write_random_weights_marker(folder: Path, role: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / RANDOM_WEIGHTS_MARKER).write_text(
        json.dumps({"role": role, "note": "random weights for tests and demos; outputs are noise"}) + "\n"
    )


class ModelLocator:
    """Maps role names to local paths under the active settings."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    # ---- public -----------------------------------------------------------------------------
    def path(self, role_name: str, *, download: bool | None = None) -> Path:
        """Local path of a role's weights (a directory, or a file for single-file roles).

        ``download=None`` downloads when the settings are online; ``False`` only looks locally.
        """
        role = get_role(role_name)
        override = self.settings.model_overrides.get(role.name)
        if override:
            local = Path(override).expanduser()
            if local.exists():
                return local
            source: HubSource | UrlSource = HubSource(override)
        elif self.settings.profile == "tiny":
            return self._tiny_path(role)
        else:
            source = role.source
        allow_network = (not self.settings.offline) if download is None else download
        if isinstance(source, HubSource):
            return self._hub_path(role, source, allow_network)
        return self._url_path(role, source, allow_network)

    def is_available(self, role_name: str) -> bool:
        """True when the role can be used without the network (tiny models count: they build locally)."""
        role = get_role(role_name)
        if self.settings.profile == "tiny" and not self.settings.model_overrides.get(role.name):
            return True
        try:
            self.path(role_name, download=False)
        except MissingWeightsError:
            return False
        return True

    def source_description(self, role_name: str) -> str:
        role = get_role(role_name)
        override = self.settings.model_overrides.get(role.name)
        if override:
            return override
        if self.settings.profile == "tiny":
            # No server path here: this string ends up in manifests and metadata that visitors see.
            return f"tiny-random/{role.name}"
        return role.source.describe()

    # ---- tiny -------------------------------------------------------------------------------
    def _tiny_path(self, role: Role) -> Path:
        folder = self.settings.tiny_dir / role.name
        target = folder / role.tiny_path if role.tiny_path else folder
        with _tiny_lock:
            if not (folder / RANDOM_WEIGHTS_MARKER).is_file():
                build_tiny_role(role, folder)
        return target

    # ---- hugging face -----------------------------------------------------------------------
    def _hub_path(self, role: Role, source: HubSource, allow_network: bool) -> Path:
        from huggingface_hub import hf_hub_download, snapshot_download

        def fetch(local_only: bool) -> Path:
            if source.filename:
                return Path(
                    hf_hub_download(
                        source.repo_id, source.filename, revision=source.revision, local_files_only=local_only
                    )
                )
            return Path(
                snapshot_download(
                    source.repo_id,
                    revision=source.revision,
                    allow_patterns=list(source.allow_patterns) if source.allow_patterns else None,
                    local_files_only=local_only,
                )
            )

        try:
            return fetch(local_only=True)
        except Exception as local_exc:  # noqa: BLE001 - any miss means "not in the cache"
            if not allow_network:
                raise MissingWeightsError(
                    role.name, source.describe(), download_command(role.name), "not in the local cache; offline"
                ) from local_exc
        try:
            return fetch(local_only=False)
        except Exception as exc:  # noqa: BLE001 - network, auth, disk: all end as one clear message
            raise MissingWeightsError(
                role.name, source.describe(), download_command(role.name), _short_reason(exc)
            ) from exc

    # ---- release files ----------------------------------------------------------------------
    def _url_path(self, role: Role, source: UrlSource, allow_network: bool) -> Path:
        target = self.settings.weights_dir / role.name / source.filename
        if target.is_file():
            return target
        if not allow_network:
            raise MissingWeightsError(
                role.name, source.describe(), download_command(role.name), f"{target} not found; offline"
            )
        try:
            download_url(source.url, target, source.sha256)
        except Exception as exc:  # noqa: BLE001
            raise MissingWeightsError(
                role.name, source.describe(), download_command(role.name), _short_reason(exc)
            ) from exc
        return target


def _short_reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:160]


def download_url(url: str, target: Path, sha256: str | None, progress: bool = True) -> None:
    """Download to a temp file beside ``target`` (resuming a ``.part``), verify, then ``os.replace``."""
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    start = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={start}-"} if start else {})
    with urllib.request.urlopen(request, timeout=30) as response:
        mode = "ab" if start and response.status == 206 else "wb"
        total = int(response.headers.get("Content-Length") or 0) + (start if mode == "ab" else 0)
        done = start if mode == "ab" else 0
        with open(part, mode) as out:
            while chunk := response.read(1 << 20):
                out.write(chunk)
                done += len(chunk)
                if progress and total:
                    print(f"\r  {target.name}: {done / total:6.1%} of {total / 1e6:.1f} MB", end="", flush=True)
    if progress:
        print()
    if sha256:
        digest = hashlib.sha256(part.read_bytes()).hexdigest()
        if digest != sha256:
            part.unlink()
            raise ValueError(f"checksum mismatch for {target.name}: got {digest}, expected {sha256}")
    os.replace(part, target)


def build_tiny_role(role: Role, folder: Path) -> None:
    """Write a role's random-weight model into ``folder`` atomically (temp dir, then rename)."""
    module_name, func_name = role.tiny_builder.split(":")
    builder = getattr(importlib.import_module(module_name), func_name)
    folder.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder.parent, prefix=f".{role.name}-") as tmp:
        staging = Path(tmp) / "model"
        staging.mkdir()
        builder(staging, role)
        write_random_weights_marker(staging, role.name)
        if folder.exists():
            _remove_tree(folder)
        os.replace(staging, folder)


def _remove_tree(path: Path) -> None:
    import shutil

    shutil.rmtree(path)
