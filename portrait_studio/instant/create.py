"""Create an instant likeness from photos: check them, encode the best aligned crops, store the encodings.

What is kept (and said in the UI): the image encoder's encodings of up to :data:`MAX_FACES` of the best
aligned face crops (float16, tied to the encoder that made them) and the reference face crop (for the
identity score of best-of-N and the Library picture). Everything else the face check wrote (the other
crops, masks, contact sheet, report) is deleted before this returns, and the photos are never copied.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from portrait_studio.config import Settings
from portrait_studio.errors import InputError
from portrait_studio.instant.adapter import ENCODER_ROLE, adapter_random_weights
from portrait_studio.instant.embeddings import encode_faces, save_encodings
from portrait_studio.instant.notes import MAX_FACES, STORED_NOTE  # noqa: F401 - STORED_NOTE re-exported
from portrait_studio.models.manager import ModelManager
from portrait_studio.progress import CancelToken, ProgressFn, no_progress, scaled

CLASS_WORD = "person"


@dataclass
class InstantResult:
    record: Any  # LoraRecord of kind "instant"
    faces_used: int
    report: dict
    random_weights: bool
    warnings: list[str] = field(default_factory=list)


def create_instant(
    manager: ModelManager,
    settings: Settings,
    name: str,
    photos: list[Path],
    *,
    owner: str = "local",
    registry: Any = None,
    consent: bool = True,
    progress: ProgressFn = no_progress,
    cancel: CancelToken | None = None,
) -> InstantResult:
    """Check ``photos`` (one usable face is enough), encode the best crops, add the likeness to the Library.

    ``consent`` is the app's consent checkbox (running the command line is consent, as for training).
    Raises :class:`NotEnoughFacesError` (with the per-photo report) when no photo passes.
    """
    from portrait_studio.faces.pipeline import prepare_faces
    from portrait_studio.registry import LoraRegistry

    cancel = cancel or CancelToken()
    if consent is not True:
        raise InputError("Please confirm consent: use only photos of yourself, or of someone who agreed to it.")
    if not (name or "").strip():
        raise InputError("Give the likeness a name (for example your first name).")
    registry = registry or LoraRegistry(settings.registry_dir)
    info = manager.sd_info()
    settings.temp_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=settings.temp_dir, prefix=".instant-"))
    try:
        prepared = prepare_faces(
            [Path(p) for p in photos], work / "faces", settings, top_k=MAX_FACES, min_keep=1, restore=False,
            progress=scaled(progress, 0.0, 0.7), cancel=cancel,
        )
        cancel.raise_if_cancelled()
        progress(0.75, "encoding the faces for the adapter")
        crops = []
        for path in prepared.crop_paths()[:MAX_FACES]:
            with Image.open(path) as opened:
                crops.append(opened.convert("RGB"))
        encodings = encode_faces(manager, crops)
        random_weights = bool(prepared.random_weights or adapter_random_weights(manager))
        encoder_id = manager.locator.source_description(ENCODER_ROLE)
        progress(0.9, "adding the likeness to your Library")
        record = registry.add_instant(
            owner, name, lambda target: save_encodings(encodings, target, encoder_id),
            reference=prepared.reference_path, trigger="", class_word=CLASS_WORD, base_model=info.base_id,
            faces=len(crops), random_weights=random_weights, identity=prepared.reference_embedding,
            extra={"image_encoder": encoder_id, "face_backend": prepared.backend,
                   "adapter": manager.locator.source_description("ip_adapter_face")},
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    progress(1.0, "done")
    warnings = list(prepared.warnings)
    if random_weights:
        warnings.insert(0, "Made with random-weight test models (tiny profile): this likeness is for testing the flow.")
    return InstantResult(record, len(crops), prepared.report, random_weights, warnings)
