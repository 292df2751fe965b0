"""Best of N (FaceChain's recipe): score each image by face similarity to the likeness reference, best first."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from portrait_studio.errors import InputError
from portrait_studio.stylize.generate import GeneratedImage


def largest_face(backend: Any, image: Image.Image) -> tuple[np.ndarray, Any] | None:
    """(RGB array, the largest plausible face) in ``image``, or None when there is no face."""
    from portrait_studio.faces.align import landmarks_plausible
    from portrait_studio.faces.analyze import detect_scaled

    rgb = np.asarray(image.convert("RGB"))
    faces = [f for f in detect_scaled(backend, rgb) if landmarks_plausible(f.box, f.landmarks5)]
    if not faces:
        return None
    return rgb, max(faces, key=lambda f: f.area)


def reference_scorer(settings: Any, reference_path: Path | None, likeness_name: str) -> Any:
    """A :class:`FaceScorer` for the likeness' reference face.

    Raises :class:`InputError` when the likeness has no reference picture or no face is found in it.
    """
    from portrait_studio.faces.backends import get_face_backend
    from portrait_studio.faces.similarity import FaceScorer

    if reference_path is None or not Path(reference_path).is_file():
        raise InputError(
            f"The likeness '{likeness_name}' has no reference face picture, so images cannot be ranked by "
            "likeness. Turn off Best of N, or train the likeness again."
        )
    backend = get_face_backend(settings)
    with Image.open(reference_path) as opened:
        reference = opened.convert("RGB")
    found = largest_face(backend, reference)
    if found is None:
        raise InputError(f"No face was found in the reference picture of '{likeness_name}'; Best of N needs one.")
    rgb, face = found
    return FaceScorer(backend, backend.embed(rgb, face))


def likeness_scorer(settings: Any, likeness: Any) -> Any:
    """The likeness score of best-of-N, the same for instant and trained likenesses.

    When the Library entry holds its identity centre (``identity.npy``: the face model's robust centre of the
    kept crops, the one training scored its checkpoints against) and the face backend that made it is known,
    images are scored against that; older entries fall back to the reference face picture.
    """
    import numpy as np

    from portrait_studio.faces.backends import get_face_backend
    from portrait_studio.faces.similarity import FaceScorer

    identity = getattr(likeness, "identity_path", None)
    backend_name = getattr(likeness, "face_backend", "")
    if identity is not None and backend_name in ("dlib", "facexlib"):
        try:
            embedding = np.load(identity, allow_pickle=False)
        except (OSError, ValueError):
            embedding = None
        if embedding is not None:
            return FaceScorer(get_face_backend(settings.replace(face_backend=backend_name)), embedding)
    return reference_scorer(settings, likeness.reference_path, likeness.name)


def rank(images: list[GeneratedImage], scorer: Any) -> list[GeneratedImage]:
    """Score every image (0 = no face found) and return them best first; ties keep generation order."""
    for item in images:
        item.score = round(float(scorer.score(item.image)), 4)
        item.metadata["score"] = item.score
    order = sorted(range(len(images)), key=lambda i: (-(images[i].score or 0.0), i))
    ranked = [images[i] for i in order]
    for position, item in enumerate(ranked, start=1):
        item.metadata["rank"] = position
    return ranked
