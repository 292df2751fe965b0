""""Check photos": the face pipeline's verdict on an upload, as the :class:`PhotoVerdict` Train obeys.

Same analysis as the training job (``prepare_faces``: same rules, same backend, same ``top_k``), without
restoration and without keeping any file. On top of it: the file rule and count rule of
``likeness.photo_rule`` (so a file the job manager would refuse is rejected here, with the same words),
and the "too similar" warning for copies of one shot (``faces.duplicates``).
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from portrait_studio.config import Settings
from portrait_studio.faces.entry import KEPT, FaceEntry
from portrait_studio.likeness.photo_rule import (
    REJECTED,
    PhotoCount,
    PhotoDecision,
    PhotoVerdict,
    file_problem,
    fingerprint,
)
from portrait_studio.progress import CancelToken, ProgressFn, no_progress

# What the training job uses (worker.prepare_dataset -> prepare_faces defaults).
TRAINING_TOP_K = 15


@dataclass
class CheckResult:
    verdict: PhotoVerdict
    entries: list[FaceEntry]  # upload order
    contact_sheet: Image.Image


def check_photos(paths: Sequence[Path], settings: Settings, work_dir: Path, *, progress: ProgressFn = no_progress,
                 cancel: CancelToken | None = None) -> CheckResult:
    """Analyse the upload like the training job will; nothing stays in ``work_dir`` afterwards."""
    from portrait_studio.faces.backends import get_face_backend
    from portrait_studio.faces.duplicates import duplicate_warning, near_duplicate_groups
    from portrait_studio.faces.pipeline import prepare_faces
    from portrait_studio.faces.report import NotEnoughFacesError, contact_sheet

    paths = [Path(p) for p in paths]
    rule = PhotoCount.from_settings(settings)
    rule.check_upload(len(paths))
    problems = {index: file_problem(path, settings) for index, path in enumerate(paths)}
    analysable = [path for index, path in enumerate(paths) if problems[index] is None]
    analysed: list[FaceEntry] = []
    reference = None
    warnings: list[str] = []
    backend = get_face_backend(settings)
    if analysable:
        try:
            prepared = prepare_faces(analysable, Path(work_dir), settings, top_k=TRAINING_TOP_K, min_keep=1,
                                     restore=False, progress=progress, cancel=cancel)
            analysed, reference, warnings = prepared.entries, prepared.reference, list(prepared.warnings)
        except NotEnoughFacesError as exc:  # nobody usable: every entry still says why
            analysed = exc.entries
        finally:
            shutil.rmtree(work_dir, ignore_errors=True)
    by_path = iter(analysed)
    entries: list[FaceEntry] = []
    for index, path in enumerate(paths):
        if problems[index] is None:
            entry = next(by_path)
            entry.index = index
        else:
            entry = FaceEntry(path=path, index=index)
            entry.reject(problems[index])
        entries.append(entry)
    kept = [e for e in entries if e.status == KEPT]
    groups = near_duplicate_groups([e.name for e in kept], [e.crop for e in kept], [e.embedding for e in kept],
                                   backend.similarity) if len(kept) > 1 else []
    warnings.extend(duplicate_warning(group) for group in groups)
    decisions = [PhotoDecision(e.name, fingerprint(e.path) if e.path.is_file() else "",
                               KEPT if e.status == KEPT else REJECTED, e.reason, e.rank if e.status == KEPT else None)
                 for e in entries]
    verdict = PhotoVerdict(rule, decisions, warnings, [g.names for g in groups], backend.name)
    # The sheet's bitmap font has no en dash: "5-20" there, "5–20" on the page.
    title = (f"{len(verdict.kept)} of {len(entries)} photos usable  ·  training needs {rule.text.replace('–', '-')}"
             f"  ·  backend {backend.name}")
    return CheckResult(verdict, entries, contact_sheet(entries, reference, title))
