"""File-system primitives of the registry: owner folders, slugs, atomic writes and the namespace lock.

No path is ever built from a user string: owner ids become ``local`` or a hash, names become slugs
of ``[a-z0-9-]``. Writers hold an exclusive ``fcntl.flock`` on ``<namespace>/.lock``; each holder
opens its own file description, so the lock excludes threads of one process as well as processes.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import tempfile
import unicodedata
from collections.abc import Iterator
from pathlib import Path

from portrait_studio.errors import InputError

DEFAULT_OWNER = "local"
MAX_OWNER_CHARS = 256
MAX_NAME_CHARS = 80
MAX_SLUG_CHARS = 48
LOCK_NAME = ".lock"


def owner_key(owner: str) -> str:
    """Folder name of an owner's namespace: ``local`` for the local user, a hash for everyone else."""
    if not isinstance(owner, str) or not owner or len(owner) > MAX_OWNER_CHARS:
        raise InputError(f"Owner id must be a non-empty string of at most {MAX_OWNER_CHARS} characters.")
    if any(not ch.isprintable() for ch in owner):
        raise InputError("Owner id contains control characters.")
    if owner == DEFAULT_OWNER:
        return DEFAULT_OWNER
    return "h-" + hashlib.sha256(owner.encode("utf-8")).hexdigest()[:40]


def clean_name(name: str) -> str:
    """A display name: one printable line, trimmed, not too long."""
    if not isinstance(name, str):
        raise InputError(f"LoRA name must be text, got {type(name).__name__}.")
    cleaned = " ".join("".join(ch if ch.isprintable() else " " for ch in name).split())
    if not cleaned:
        raise InputError("LoRA name is empty; give it a name such as 'Anna'.")
    if len(cleaned) > MAX_NAME_CHARS:
        raise InputError(f"LoRA name is {len(cleaned)} characters long; keep it under {MAX_NAME_CHARS}.")
    return cleaned


def slugify(name: str) -> str:
    """``"Émile's Portrait!"`` -> ``"emile-s-portrait"``; never empty, never a dot-name."""
    ascii_text = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")[:MAX_SLUG_CHARS].strip("-")
    return slug or "lora"


def is_slug(text: str) -> bool:
    return bool(re.fullmatch(r"[a-z0-9](?:[a-z0-9-]{0,78}[a-z0-9])?", text))


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so readers see the old file or the new one, never a mix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as temp:
            temp.write(data)
            temp.flush()
            os.fsync(temp.fileno())
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def namespace_lock(folder: Path) -> Iterator[None]:
    """Exclusive lock of one owner's namespace (threads and processes alike)."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / LOCK_NAME, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
