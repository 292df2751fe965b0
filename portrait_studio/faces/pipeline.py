"""``prepare_faces``: from a user's photos to aligned training crops, masks, a reference face and a report.

detect -> dominant-face rule -> minimum size -> landmarks -> roll/yaw -> FFHQ-aligned crop -> quality ->
embedding -> robust identity centre -> score = similarity x quality x angle -> top k -> reference face;
optional GFPGAN restoration of small or blurry crops and a white background.

Output (built in a temporary folder beside ``out_dir``, then renamed into place)::

    crops/NN_<stem>.png   masks/NN_<stem>.png (L)   reference.png   reference_embedding.npy
    report.json           contact_sheet.png
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from portrait_studio.config import Settings
from portrait_studio.errors import InputError, MissingWeightsError
from portrait_studio.faces.analyze import AnalysisOptions, analyze_photo, decode_for_analysis
from portrait_studio.faces.backends import get_face_backend
from portrait_studio.faces.entry import KEPT, FaceEntry
from portrait_studio.faces.masks import on_white, person_mask
from portrait_studio.faces.report import NotEnoughFacesError, build_report, contact_sheet, not_enough_message
from portrait_studio.faces.selection import select_faces
from portrait_studio.media.images import save_image
from portrait_studio.progress import CancelToken, ProgressFn, no_progress

# Crops restored by GFPGAN: faces enlarged by the crop, or soft ones.
RESTORE_BELOW_RESOLUTION = 1.0
RESTORE_BELOW_SHARPNESS = 0.6
REPORT_NAME = "report.json"


@dataclass
class PreparedFaces:
    out_dir: Path
    entries: list[FaceEntry]  # every input, in input order
    kept: list[FaceEntry]  # best first
    rejected: list[FaceEntry]
    reference: FaceEntry
    reference_path: Path
    reference_embedding: np.ndarray
    report_path: Path
    contact_sheet: Image.Image
    contact_sheet_path: Path
    backend: str
    random_weights: bool
    warnings: list[str] = field(default_factory=list)
    report: dict = field(default_factory=dict)

    def crop_paths(self) -> list[Path]:
        return [self.out_dir / "crops" / e.crop_name for e in self.kept if e.crop_name]


def _stem(path: Path) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9_-]+", "_", path.stem).strip("_")
    return cleaned[:40] or "photo"


def _check_arguments(paths: Sequence[Path], settings: Settings, top_k: int, min_keep: int, crop_size: int) -> None:
    if not paths:
        raise InputError("No photos given: add at least a few photos of your face.")
    if len(paths) > settings.max_photos:
        raise InputError(
            f"{len(paths)} photos given; the limit is {settings.max_photos} (setting max_photos). "
            "Pick your best ones."
        )
    if min_keep < 1 or top_k < min_keep:
        raise InputError(f"top_k ({top_k}) must be at least min_keep ({min_keep}), and min_keep at least 1.")
    if not 64 <= crop_size <= 2048:
        raise InputError(f"Crop size must be between 64 and 2048 pixels, got {crop_size}.")


def _check_out_dir(out_dir: Path) -> None:
    if out_dir.exists() and (not out_dir.is_dir() or (any(out_dir.iterdir()) and not (out_dir / REPORT_NAME).exists())):
        raise InputError(
            f"Output folder {out_dir} exists and holds other files; choose a new or empty folder "
            "(an earlier face-preparation folder is replaced)."
        )


def _restore(kept: list[FaceEntry], settings: Settings, warnings: list[str]) -> bool:
    """Restore small or soft crops in place; returns whether the restorer had random weights."""
    targets = [
        e for e in kept
        if e.scores and (e.scores.resolution < RESTORE_BELOW_RESOLUTION or e.scores.sharpness < RESTORE_BELOW_SHARPNESS)
    ]
    if not targets:
        return False
    from portrait_studio.faces.restore import get_restorer

    try:
        restorer = get_restorer(settings)
    except MissingWeightsError as exc:
        warnings.append(f"{len(targets)} small or soft crop(s) were not restored: {exc}")
        return False
    for entry in targets:
        entry.crop = restorer.restore_aligned(entry.crop)
        entry.restored = True
        entry.warnings.append("restored with GFPGAN (small or soft face)")
    if restorer.random_weights:
        warnings.append("GFPGAN has RANDOM weights (tiny profile): restored crops are noise")
    return restorer.random_weights


def _write_outputs(staging: Path, result_entries: list[FaceEntry], kept: list[FaceEntry], reference: FaceEntry,
                   centre: np.ndarray, report: dict, sheet: Image.Image) -> None:
    for entry in kept:
        save_image(entry.crop, staging / "crops" / entry.crop_name, compress_level=1)
        save_image(entry.mask.convert("L"), staging / "masks" / entry.crop_name, compress_level=1)
    save_image(reference.crop, staging / "reference.png", compress_level=1)
    np.save(staging / "reference_embedding.npy", centre.astype(np.float32))
    save_image(sheet, staging / "contact_sheet.png", compress_level=1)
    (staging / REPORT_NAME).write_text(json.dumps(report, indent=2) + "\n")


def _swap_into_place(staging: Path, out_dir: Path) -> None:
    """Replace ``out_dir`` by ``staging`` with renames only, so readers see the old or the new folder."""
    old = None
    if out_dir.exists():
        old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
        os.replace(out_dir, old)
    os.replace(staging, out_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def prepare_faces(
    paths: list[Path],
    out_dir: Path,
    settings: Settings,
    *,
    top_k: int = 15,
    min_keep: int = 3,
    crop_size: int = 512,
    restore: bool = True,
    white_background: bool = False,
    min_face_px: int = 64,
    progress: ProgressFn = no_progress,
    cancel: CancelToken | None = None,
) -> PreparedFaces:
    """Analyse ``paths``, keep the best ``top_k`` faces of the main identity and write them to ``out_dir``.

    Raises :class:`NotEnoughFacesError` (an ``InputError`` listing every photo's reason) when fewer than
    ``min_keep`` survive; nothing is written then.
    """
    paths = [Path(p) for p in paths]
    out_dir = Path(out_dir)
    _check_arguments(paths, settings, top_k, min_keep, crop_size)
    _check_out_dir(out_dir)
    backend = get_face_backend(settings)
    options = AnalysisOptions(crop_size=crop_size, min_face_px=min_face_px)
    entries: list[FaceEntry] = []
    # Decode the next photo on the second core while this one is analysed (Pillow releases the GIL).
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="decode") as pool:
        upcoming = pool.submit(decode_for_analysis, paths[0], settings)
        for index, path in enumerate(paths):
            decoded = upcoming.result()
            if index + 1 < len(paths):
                upcoming = pool.submit(decode_for_analysis, paths[index + 1], settings)
            if cancel is not None and cancel.cancelled:
                upcoming.cancel()
                cancel.raise_if_cancelled()
            progress(0.8 * index / len(paths), f"Analysing {path.name} ({index + 1}/{len(paths)})")
            entries.append(analyze_photo(path, index, backend, settings, options, decoded))
    progress(0.8, "Comparing faces")
    selection = select_faces(entries, backend, top_k)
    warnings: list[str] = []
    if backend.random_weights:
        warnings.append(f"the {backend.name} face models have RANDOM weights (tiny profile): decisions are noise")
    used = {"top_k": top_k, "min_keep": min_keep, "crop_size": crop_size, "restore": restore,
            "white_background": white_background, "min_face_px": min_face_px}
    title = f"{len(selection.kept)} of {len(entries)} photos kept  ·  backend {backend.name}"
    if len(selection.kept) < min_keep:
        sheet = contact_sheet(entries, None, title)
        report = build_report(entries, backend=backend.name, random_weights=backend.random_weights,
                              reference=None, settings_used=used, warnings=warnings)
        raise NotEnoughFacesError(not_enough_message(entries, len(selection.kept), min_keep), entries, sheet, report)
    if cancel is not None:
        cancel.raise_if_cancelled()
    random_weights = backend.random_weights
    if restore:
        progress(0.85, "Restoring small or soft faces")
        random_weights = _restore(selection.kept, settings, warnings) or random_weights
    if white_background:
        progress(0.9, "Whitening backgrounds")
        for entry in selection.kept:
            entry.crop = on_white(entry.crop, person_mask(entry.crop, entry.mask))
    for rank, entry in enumerate(selection.kept, start=1):
        entry.crop_name = f"{rank:02d}_{_stem(entry.path)}.png"
    reference = selection.reference
    sheet = contact_sheet(entries, reference, title)
    report = build_report(entries, backend=backend.name, random_weights=random_weights, reference=reference,
                          settings_used=used, warnings=warnings)
    progress(0.95, "Writing crops and report")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.tmp-"))
    try:
        _write_outputs(staging, entries, selection.kept, reference, selection.centre, report, sheet)
        _swap_into_place(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    progress(1.0, "Done")
    return PreparedFaces(
        out_dir=out_dir,
        entries=entries,
        kept=selection.kept,
        rejected=[e for e in entries if e.status != KEPT],
        reference=reference,
        reference_path=out_dir / "reference.png",
        reference_embedding=selection.centre,
        report_path=out_dir / REPORT_NAME,
        contact_sheet=sheet,
        contact_sheet_path=out_dir / "contact_sheet.png",
        backend=backend.name,
        random_weights=random_weights,
        warnings=warnings,
        report=report,
    )
