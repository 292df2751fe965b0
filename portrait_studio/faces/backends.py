"""Choosing a face backend: facexlib when its published weights are on disk, dlib otherwise.

``Settings.face_backend`` overrides the choice ("facexlib" or "dlib"). In the tiny profile "auto" picks
dlib: its weights are real (they ship in PyPI wheels) while tiny facexlib weights are random noise.
"""

from __future__ import annotations

import threading

from portrait_studio.config import Settings
from portrait_studio.errors import MissingWeightsError
from portrait_studio.faces.types import DetectedFace, FaceBackend
from portrait_studio.models.locator import ModelLocator

__all__ = ["DetectedFace", "FaceBackend", "get_face_backend", "choose_backend_name"]

_FACEXLIB_REQUIRED = ("face_detection", "face_recognition")
_lock = threading.Lock()
_backends: dict[tuple, FaceBackend] = {}


def _facexlib_ready(settings: Settings) -> bool:
    locator = ModelLocator(settings)
    for role in _FACEXLIB_REQUIRED:
        try:
            locator.path(role, download=False)
        except MissingWeightsError:
            return False
    return True


def choose_backend_name(settings: Settings) -> str:
    if settings.face_backend in ("facexlib", "dlib"):
        return settings.face_backend
    if settings.profile != "tiny" and _facexlib_ready(settings):
        return "facexlib"
    from portrait_studio.faces.dlib_backend import dlib_available

    return "dlib" if dlib_available() else "facexlib"


def get_face_backend(settings: Settings) -> FaceBackend:
    """The backend for ``settings`` (cached per process; models load once)."""
    name = choose_backend_name(settings)
    threshold = settings.identity_threshold_facexlib if name == "facexlib" else settings.identity_threshold_dlib
    key = (name, str(settings.home), settings.profile, settings.device, tuple(sorted(settings.model_overrides.items())),
           threshold)
    with _lock:
        if key not in _backends:
            if name == "facexlib":
                from portrait_studio.faces.facexlib_backend import FacexlibBackend

                backend: FaceBackend = FacexlibBackend(settings)
            else:
                from portrait_studio.faces.dlib_backend import DlibBackend

                backend = DlibBackend()
            backend.same_person_threshold = threshold  # the setting wins over the class default
            _backends[key] = backend
        return _backends[key]
