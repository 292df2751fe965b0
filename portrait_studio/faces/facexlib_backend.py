"""The production face backend: facexlib's RetinaFace, ArcFace, hyperIQA and ParseNet.

Weights are the model roles ``face_detection``, ``face_recognition`` (required), ``face_quality`` and
``face_parsing`` (optional: without them quality is measured classically and masks come from landmarks).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
import torch
from PIL import Image

from portrait_studio.config import Settings
from portrait_studio.errors import MissingWeightsError
from portrait_studio.faces import facexlib_models as fm
from portrait_studio.faces.align import similarity_transform
from portrait_studio.faces.masks import mask_from_parsing
from portrait_studio.faces.types import DetectedFace
from portrait_studio.models.devices import pick_device
from portrait_studio.models.locator import ModelLocator, is_random_weights
from portrait_studio.models.process_cache import file_key, process_cache

# InsightFace's five-point layout for 112 x 112 ArcFace inputs.
ARCFACE_TEMPLATE_112 = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]]
)
_IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
_IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
DETECTION_THRESHOLD = 0.8
MAX_FACES = 20
# Similarity is ArcFace's cosine clipped at 0; about 0.3 is the usual same-person boundary for IR-SE50.
# The default of Settings.identity_threshold_facexlib, which get_face_backend applies.
ARCFACE_SAME_PERSON = 0.3


def arcface_input(rgb_crop: np.ndarray) -> torch.Tensor:
    """A (1, 3, 112, 112) tensor in [-1, 1] with the channels in **BGR** order, as IR-SE50 was trained.

    facexlib's ``recognition_arcface_ir_se50.pth`` is TreB1eN's InsightFace_Pytorch model. Its training
    images were decoded by MXNet/OpenCV (BGR) and saved through PIL as if RGB, and its validation pairs are
    converted RGB->BGR explicitly (``data/data_pipe.py``: ``cv2.cvtColor(img, cv2.COLOR_RGB2BGR)``), so the
    network expects BGR. Normalisation is ``(x / 255 - 0.5) / 0.5``.
    """
    bgr = np.ascontiguousarray(rgb_crop[:, :, ::-1], dtype=np.float32)
    return torch.from_numpy(bgr / 127.5 - 1.0).permute(2, 0, 1)[None]


class FacexlibBackend:
    name = "facexlib"
    same_person_threshold = ARCFACE_SAME_PERSON

    def __init__(self, settings: Settings) -> None:
        locator = ModelLocator(settings)
        self.device = pick_device(settings.device)
        # The networks are entries of the process's model cache (one unload_all frees them), loaded now so
        # a damaged file is reported at once, and locked on the device for each call.
        self.cache = process_cache(settings)
        self._nets: dict[str, tuple[str, Callable[[], torch.nn.Module]]] = {}
        detection = locator.path(fm.DETECTION_ROLE)
        recognition = locator.path(fm.RECOGNITION_ROLE)
        self._add("detector", fm.DETECTION_ROLE, detection, fm.load_retinaface)
        self._add("arcface", fm.RECOGNITION_ROLE, recognition, fm.load_arcface)
        for name, role, load in (("hyperiqa", fm.QUALITY_ROLE, fm.load_hyperiqa),
                                 ("parser", fm.PARSING_ROLE, fm.load_parsenet)):
            try:
                self._add(name, role, locator.path(role), load)
            except MissingWeightsError:
                continue  # optional: classical quality, masks from landmarks
        used = [detection, recognition]
        self.random_weights = any(is_random_weights(path) for path in used)

    def _add(self, name: str, role: str, path, load) -> None:  # noqa: ANN001 - a Path and an fm.load_* function
        key = file_key(role, path, self.device)
        loader = lambda: load(path, self.device)  # noqa: E731 - kept with its key
        self.cache.get(key, loader)
        self._nets[name] = (key, loader)

    @contextmanager
    def _net(self, name: str) -> Iterator[torch.nn.Module]:
        key, loader = self._nets[name]
        with self.cache.use(key, loaders={key: loader}) as parts:
            yield parts[key]

    @torch.no_grad()
    def detect(self, rgb: np.ndarray) -> list[DetectedFace]:
        bgr = np.ascontiguousarray(rgb[:, :, ::-1])
        with self._net("detector") as detector:
            rows = detector.detect_faces(bgr, conf_threshold=DETECTION_THRESHOLD)
        faces = []
        height, width = rgb.shape[:2]
        for row in np.asarray(rows)[:MAX_FACES]:
            box = np.asarray(row[:4], dtype=np.float64)
            landmarks = np.asarray(row[5:15], dtype=np.float64).reshape(5, 2)
            if not np.isfinite(row[:15]).all() or box[2] <= box[0] or box[3] <= box[1]:
                continue
            box = np.clip(box, 0, [width, height, width, height])
            faces.append(DetectedFace(box, float(row[4]), landmarks))
        return faces

    @torch.no_grad()
    def embed(self, rgb: np.ndarray, face: DetectedFace) -> np.ndarray:
        import cv2

        matrix = similarity_transform(face.landmarks5, ARCFACE_TEMPLATE_112)
        crop = cv2.warpAffine(np.ascontiguousarray(rgb), matrix, (112, 112), borderMode=cv2.BORDER_REFLECT101)
        tensor = arcface_input(crop).to(self.device)
        with self._net("arcface") as arcface:
            vector = arcface(tensor)[0].float().cpu().numpy()
        norm = float(np.linalg.norm(vector)) or 1.0
        return (vector / norm).astype(np.float32)

    def similarity(self, a: np.ndarray, b: np.ndarray) -> float:
        return float(np.clip(np.dot(np.asarray(a, np.float64), np.asarray(b, np.float64)), 0.0, 1.0))

    @torch.no_grad()
    def quality(self, aligned: Image.Image) -> float | None:
        if "hyperiqa" not in self._nets:
            return None
        work = np.asarray(aligned.convert("RGB").resize((224, 224), Image.Resampling.BILINEAR), dtype=np.float32)
        tensor = torch.from_numpy((work / 255.0 - _IMAGENET_MEAN) / _IMAGENET_STD).permute(2, 0, 1)[None]
        with self._net("hyperiqa") as hyperiqa:
            score = float(hyperiqa(tensor.to(self.device)).float().mean().cpu())
        # hyperIQA predicts on KonIQ's 0-100 opinion scale.
        return float(np.clip(score / 100.0, 0.0, 1.0)) if np.isfinite(score) else 0.0

    @torch.no_grad()
    def face_mask(self, aligned: Image.Image) -> Image.Image | None:
        if "parser" not in self._nets:
            return None
        work = np.asarray(aligned.convert("RGB").resize((512, 512), Image.Resampling.BILINEAR), dtype=np.float32)
        tensor = torch.from_numpy(work / 127.5 - 1.0).permute(2, 0, 1)[None].to(self.device)
        with self._net("parser") as parser:
            logits = parser(tensor)[0]
        labels = logits.argmax(dim=1)[0].cpu().numpy().astype(np.uint8)
        return mask_from_parsing(labels, aligned.size[0])
