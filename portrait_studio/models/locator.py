"""Resolve a model role to files on disk: a per-role override, the tiny profile, or published weights.

Published weights come from the Hugging Face cache (``HF_HOME`` is respected) or, for release files,
from ``<home>/weights/<role>/``. When they are not there and cannot be fetched (offline, no network,
gated repo) the caller gets one :class:`MissingWeightsError` naming the role, the source and the
command that fetches it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import importlib
import json
import os
import shutil
import tempfile
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from portrait_studio.config import Settings
from portrait_studio.errors import IncompleteWeightsError, MissingWeightsError
from portrait_studio.models import files as role_files
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
    def path(self, role_name: str, *, download: bool | None = None, config_only: bool = False) -> Path:
        """Local path of a role's weights (a directory, or a file for single-file roles).

        ``download=None`` downloads when the settings are online; ``False`` only looks locally.
        ``config_only`` asks only for the role's config (Fast mode needs no more of the v1-5-2 adapter).
        A hub folder is checked against the role's file list before it is returned.
        """
        role = get_role(role_name)
        override = self.settings.model_overrides.get(role.name)
        if override:
            local = Path(override).expanduser()
            if local.exists():
                return local
            source: HubSource | UrlSource = HubSource(override, revision=self._revision(role, "main"))
        elif self.settings.profile == "tiny":
            return self._tiny_path(role)
        else:
            source = role.source
            if isinstance(source, HubSource):
                source = dataclasses.replace(source, revision=self._revision(role, source.revision))
        allow_network = self._network_allowed() if download is None else download
        if isinstance(source, HubSource):
            return self._hub_path(role, source, allow_network, config_only)
        return self._url_path(role, source, allow_network)

    def is_available(self, role_name: str, config_only: bool = False) -> bool:
        """True when the role can be used without the network (tiny models count: they build locally)."""
        role = get_role(role_name)
        if self.settings.profile == "tiny" and not self.settings.model_overrides.get(role.name):
            return True
        try:
            self.path(role_name, download=False, config_only=config_only)
        except MissingWeightsError:
            return False
        return True

    def wants_fp16(self, role_name: str) -> bool:
        """True when the device runs fp16 and the role's repo publishes fp16 variant files."""
        role = get_role(role_name)
        if self.settings.profile == "tiny" or self.settings.model_overrides.get(role.name):
            return False
        import torch

        from portrait_studio.models.devices import pick_device, pick_dtype

        dtype = pick_dtype(pick_device(self.settings.device), self.settings.dtype)
        return dtype == torch.float16 and role_files.publishes_fp16(role)

    def variant(self, role_name: str, component_dir: Path) -> str | None:
        """``"fp16"`` when ``component_dir`` holds fp16 variant weights and the device wants them (or they are
        all there is)."""
        return role_files.weights_variant(component_dir, prefer_fp16=self.wants_fp16(role_name))

    def _revision(self, role: Role, default: str) -> str:
        return self.settings.revision_overrides.get(role.name) or default

    def _network_allowed(self) -> bool:
        if self.settings.offline:
            return False
        from huggingface_hub import constants

        return not constants.HF_HUB_OFFLINE

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
        if (folder / RANDOM_WEIGHTS_MARKER).is_file():
            return target
        with _tiny_lock, _role_build_lock(folder):
            if not (folder / RANDOM_WEIGHTS_MARKER).is_file():
                build_tiny_role(role, folder)
        return target

    # ---- hugging face -----------------------------------------------------------------------
    def _hub_path(self, role: Role, source: HubSource, allow_network: bool, config_only: bool = False) -> Path:
        from huggingface_hub import hf_hub_download, snapshot_download

        is_override = bool(self.settings.model_overrides.get(role.name))
        fp16 = self.wants_fp16(role.name)
        wanted = [] if is_override or source.filename else role_files.required_files(role, fp16, config_only)
        fallback = [] if not fp16 else role_files.required_files(role, False, config_only)
        patterns = None if is_override else role_files.hub_allow_patterns(role, source, fp16, config_only)
        if is_override and source.allow_patterns:
            patterns = list(source.allow_patterns)

        def fetch(local_only: bool) -> Path:
            if source.filename:
                return Path(
                    hf_hub_download(
                        source.repo_id, source.filename, revision=source.revision, local_files_only=local_only
                    )
                )
            return Path(
                snapshot_download(
                    source.repo_id, revision=source.revision, allow_patterns=patterns, local_files_only=local_only
                )
            )

        def incomplete(folder: Path) -> list[str]:
            # A complete fp32 snapshot is fine on an fp16 device (downloaded earlier): loaders cast it.
            missing = role_files.missing_files(folder, wanted)
            if missing and fallback and not role_files.missing_files(folder, fallback):
                return []
            return missing

        missing: list[str] = []
        try:
            folder = fetch(local_only=True)
        except Exception as local_exc:  # noqa: BLE001 - any miss means "not in the cache"
            if not allow_network:
                raise MissingWeightsError(
                    role.name, source.describe(), download_command(role.name), "not in the local cache; offline"
                ) from local_exc
        else:
            missing = incomplete(folder)
            if not missing:
                return folder
            if not allow_network:
                raise IncompleteWeightsError(role.name, source.describe(), download_command(role.name), missing)
        self._check_disk(role, _hub_cache_dir(), role_files.missing_size_mb(
            role, folder if missing else None, fp16, config_only))
        try:
            folder = fetch(local_only=False)
        except Exception as exc:  # noqa: BLE001 - network, auth, disk: all end as one clear message
            if missing:
                raise IncompleteWeightsError(
                    role.name, source.describe(), download_command(role.name), missing,
                    "fetching them failed: " + _short_reason(exc),
                ) from exc
            raise MissingWeightsError(
                role.name, source.describe(), download_command(role.name), _short_reason(exc)
            ) from exc
        still_missing = incomplete(folder)
        if still_missing:
            raise IncompleteWeightsError(
                role.name, source.describe(), download_command(role.name), still_missing,
                f"not published at revision {source.revision}",
            )
        return folder

    def _check_disk(self, role: Role, where: Path, need_mb: float) -> None:
        """Refuse a download that cannot fit, before any byte is written."""
        check_free_space(role.name, where, need_mb)

    # ---- release files ----------------------------------------------------------------------
    def _url_path(self, role: Role, source: UrlSource, allow_network: bool) -> Path:
        target = self.settings.weights_dir / role.name / source.filename
        if target.is_file():
            return target
        if not allow_network:
            raise MissingWeightsError(
                role.name, source.describe(), download_command(role.name), f"{target} not found; offline"
            )
        self._check_disk(role, self.settings.weights_dir, role_files.download_mb(role))
        try:
            download_url(source.url, target, source.sha256, git_blob=source.git_blob)
        except Exception as exc:  # noqa: BLE001
            raise MissingWeightsError(
                role.name, source.describe(), download_command(role.name), _short_reason(exc)
            ) from exc
        return target


def _hub_cache_dir() -> Path:
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def check_free_space(role: str, where: Path, need_mb: float, free_bytes: int | None = None) -> None:
    """Raise a clear error when ``where``'s disk has less room than ``need_mb`` plus a 5 % margin."""
    if need_mb <= 0:
        return
    if free_bytes is None:
        probe = where
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        free_bytes = shutil.disk_usage(probe).free
    need = need_mb * role_files.MB * 1.05
    if free_bytes < need:
        raise MissingWeightsError(
            role, str(where), download_command(role),
            f"needs {need_mb / 1000:.2f} GB but only {free_bytes / 1e9:.2f} GB are free on the disk of {where}; "
            "free some space or point HF_HOME / PORTRAIT_STUDIO_HOME to a larger disk",
        )


def git_blob_id(path: Path) -> str:
    """Git's blob id of a file: sha1 over ``b"blob <size>\\0"`` and the content."""
    digest = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def verify_digest(path: Path, sha256: str | None, git_blob: str | None) -> None:
    """Raise ``ValueError`` naming the file when a known digest does not match."""
    if sha256 and (got := file_sha256(path)) != sha256:
        raise ValueError(f"checksum mismatch for {path.name}: sha256 {got}, expected {sha256}")
    if git_blob and (got := git_blob_id(path)) != git_blob:
        raise ValueError(f"checksum mismatch for {path.name}: git blob {got}, expected {git_blob}")


def _short_reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:160]


def download_url(
    url: str, target: Path, sha256: str | None, progress: bool = True, git_blob: str | None = None
) -> None:
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
    try:
        verify_digest(part, sha256, git_blob)
    except ValueError as exc:
        part.unlink()
        raise ValueError(str(exc).replace(part.name, target.name)) from None
    os.replace(part, target)


@contextlib.contextmanager
def _role_build_lock(folder: Path) -> Iterator[None]:
    """Hold ``.<role>.lock`` beside the role's folder (flock) while one process builds it: several processes
    share one tiny folder (the app and its CLI, parallel test workers), and a second builder would replace
    the folder while the first one's caller loads from it."""
    import fcntl

    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f".{folder.name}.lock", "a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


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
