"""The one photo rule for training: how many photos, which files, and the check's verdict Train obeys.

The photo check (``likeness.photo_check``) writes a :class:`PhotoVerdict`; Train submits exactly the
photos the verdict kept (:func:`photos_to_train`), and the job manager applies the same count and file
rules again (``JobManager.submit``), so the check, the upload box, the report and the errors cannot
disagree: they all read :class:`PhotoCount` (``Settings.min_photos`` / ``max_photos``).

Light on purpose: the UI imports it while building the page (no face models, no torch).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from portrait_studio.config import Settings
from portrait_studio.errors import InputError

PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".heic", ".heif", ".bmp", ".tif", ".tiff"}
KEPT, REJECTED = "kept", "rejected"


@dataclass(frozen=True)
class PhotoCount:
    """Training needs ``minimum``..``maximum`` usable photos of one person; uploads above ``maximum`` are refused."""

    minimum: int
    maximum: int

    @classmethod
    def from_settings(cls, settings: Settings) -> PhotoCount:
        return cls(settings.min_photos, settings.max_photos)

    @property
    def text(self) -> str:
        """How every screen says it: "5–20 photos"."""
        return f"{self.minimum}–{self.maximum} photos"

    def check_upload(self, count: int) -> None:
        if count == 0:
            raise InputError(f"Add your selfies first: training needs {self.text} of one person.")
        if count > self.maximum:
            raise InputError(f"{count} photos uploaded; training takes {self.text}. Remove "
                             f"{count - self.maximum} and keep your best ones.")

    def shortfall(self, usable: int) -> str | None:
        """Why ``usable`` photos cannot be trained on, or None when they can."""
        if usable < self.minimum:
            more = self.minimum - usable
            return (f"Training needs {self.text} of one person; {usable} usable. Add at least {more} more "
                    f"photo{'s' if more > 1 else ''} (clear, well lit, only your face).")
        if usable > self.maximum:
            return f"Training needs {self.text} of one person; {usable} given. Remove {usable - self.maximum}."
        return None

    def require_trainable(self, usable: int) -> None:
        if reason := self.shortfall(usable):
            raise InputError(reason)


def file_problem(path: Path, settings: Settings) -> str | None:
    """Why a file can never be a training photo whatever it shows (name, size), or None."""
    if not path.is_file():
        return "the file was not found; upload it again"
    if path.suffix.lower() not in PHOTO_SUFFIXES:
        return "not a photo (use JPEG, PNG, WebP or HEIC)"
    if path.stat().st_size > settings.max_upload_mb * 1024 * 1024:
        return f"larger than {settings.max_upload_mb} MB"
    return None


def fingerprint(path: Path) -> str:
    """The file's content hash: the verdict follows the photo, not the temporary upload path."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class PhotoDecision:
    name: str
    fingerprint: str
    status: str  # KEPT or REJECTED
    reason: str
    rank: int | None = None  # 1 = best, for kept photos


@dataclass
class PhotoVerdict:
    """What the check decided about each uploaded file; JSON-able (it lives in the page's state)."""

    rule: PhotoCount
    decisions: list[PhotoDecision]  # in upload order
    warnings: list[str] = field(default_factory=list)
    duplicates: list[list[str]] = field(default_factory=list)  # groups of file names
    backend: str = ""

    @property
    def kept(self) -> list[PhotoDecision]:
        return sorted((d for d in self.decisions if d.status == KEPT), key=lambda d: (d.rank or 0, d.name))

    @property
    def rejected(self) -> list[PhotoDecision]:
        return [d for d in self.decisions if d.status != KEPT]

    @property
    def shortfall(self) -> str | None:
        return self.rule.shortfall(len(self.kept))

    @property
    def ready(self) -> bool:
        return self.shortfall is None

    def summary(self) -> str:
        """One line, the same in the report, the notes and Train's refusal."""
        head = f"{len(self.kept)} of {len(self.decisions)} photos usable for training ({self.rule.text} needed)"
        if self.ready:
            return f"{head}: these {len(self.kept)} photos will be used."
        return f"{head}. {self.shortfall}"

    def without_rejected(self) -> PhotoVerdict:
        kept = {d.name for d in self.kept}
        return PhotoVerdict(self.rule, [d for d in self.decisions if d.status == KEPT], list(self.warnings),
                            [[n for n in group if n in kept] for group in self.duplicates], self.backend)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> PhotoVerdict:
        rule = PhotoCount(**data["rule"])
        return cls(rule, [PhotoDecision(**d) for d in data["decisions"]], list(data.get("warnings", [])),
                   [list(g) for g in data.get("duplicates", [])], str(data.get("backend", "")))


def photos_to_train(verdict: PhotoVerdict | None, paths: Sequence[Path]) -> list[Path]:
    """Exactly the photos the check kept, best first; refuses when there was no check, when the photos in
    the box changed since, or when the kept ones do not meet the count rule."""
    if verdict is None:
        raise InputError("Check the photos first (Check photos): Train uses the photos the check keeps.")
    by_print: dict[str, Path] = {}
    for path in paths:
        by_print.setdefault(fingerprint(Path(path)), Path(path))
    checked = {d.fingerprint for d in verdict.decisions}
    kept_prints = {d.fingerprint for d in verdict.kept}
    # Removing rejected photos after the check is fine; any other change needs a new check.
    if not kept_prints <= set(by_print) or not set(by_print) <= checked:
        raise InputError("The photos changed since the check: press Check photos again, then Train.")
    verdict.rule.require_trainable(len(verdict.kept))
    return [by_print[d.fingerprint] for d in verdict.kept]


def rejected_removed(verdict: PhotoVerdict, paths: Sequence[Path]) -> list[Path]:
    """The upload without the photos the check rejected (the "Remove rejected" button)."""
    rejected = {d.fingerprint for d in verdict.rejected}
    return [Path(p) for p in paths if fingerprint(Path(p)) not in rejected]
