"""GFPGAN face restoration: on aligned crops (face pipeline) and on whole images with paste-back.

Whole images go through facexlib's ``FaceRestoreHelper``: detect, align each face to the 512 FFHQ
template, restore, then warp back and blend with a parsing mask. Aligned crops from our own pipeline use
the same template, so they are restored directly.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from portrait_studio.config import Settings
from portrait_studio.errors import InputError, MissingWeightsError
from portrait_studio.faces.compat import import_gfpgan_clean_arch
from portrait_studio.faces.facexlib_models import facexlib_weights_dir, read_state_dict
from portrait_studio.faces.types import DetectedFace
from portrait_studio.models.cache import ModelCache
from portrait_studio.models.devices import pick_device
from portrait_studio.models.locator import ModelLocator, download_command, is_random_weights
from portrait_studio.models.process_cache import file_key, process_cache

GFPGAN_ROLE = "gfpgan"
GFPGAN_SIZE = 512

_lock = threading.RLock()  # facexlib's helper keeps per-image state: one image at a time


def new_gfpgan() -> torch.nn.Module:
    """GFPGANv1Clean as configured for the v1.3/v1.4 release files."""
    arch = import_gfpgan_clean_arch()
    return arch(
        out_size=512, num_style_feat=512, channel_multiplier=2, decoder_load_path=None, fix_decoder=False,
        num_mlp=8, input_is_latent=True, different_w=True, narrow=1, sft_half=True,
    )


def load_gfpgan(path: Path, device: torch.device) -> torch.nn.Module:
    """GFPGAN from a release file (not cached here: :func:`get_restorer` keeps it in the model cache)."""
    checkpoint = read_state_dict(path, GFPGAN_ROLE)
    # Release files keep the EMA generator under "params_ema" (older ones "params").
    state = checkpoint.get("params_ema", checkpoint.get("params"))
    if not isinstance(state, dict):
        raise MissingWeightsError(
            GFPGAN_ROLE, str(path), download_command(GFPGAN_ROLE), "no 'params_ema' or 'params' in the file"
        )
    # Built without its random initialisation (~83 M parameters drawn for nothing: seconds of start-up on
    # CPU): on the meta device (a thread-local mode), then given uninitialised storage that the strict
    # load below overwrites in full, parameters and buffers alike.
    with torch.device("meta"):
        model = new_gfpgan()
    model.to_empty(device="cpu")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise MissingWeightsError(
            GFPGAN_ROLE, str(path), download_command(GFPGAN_ROLE), "not a GFPGANv1Clean (v1.3/v1.4) file"
        ) from exc
    return model.to(device).eval()


@dataclass
class Restorer:
    """GFPGAN as an entry of the process's model cache, and whether its weights are random (tiny profile)."""

    cache: ModelCache
    key: str
    loader: Callable[[], torch.nn.Module]
    device: torch.device
    random_weights: bool

    @contextmanager
    def locked(self) -> Iterator[torch.nn.Module]:
        """The network, locked on the device for the ``with`` block (an eviction cannot move it mid-use)."""
        with self.cache.use(self.key, loaders={self.key: self.loader}) as parts:
            yield parts[self.key]

    @torch.no_grad()
    def restore_aligned(self, crop: Image.Image, strength: float = 1.0) -> Image.Image:
        """Restore an FFHQ-aligned face crop of any size; ``strength`` blends with the original."""
        strength = float(np.clip(strength, 0.0, 1.0))
        size = crop.size
        work = crop.convert("RGB").resize((GFPGAN_SIZE, GFPGAN_SIZE), Image.Resampling.LANCZOS)
        tensor = torch.from_numpy(np.asarray(work, dtype=np.float32) / 127.5 - 1.0).permute(2, 0, 1)[None]
        with self.locked() as model:
            output = model(tensor.to(self.device), return_rgb=False, weight=0.5)[0]
        restored = ((output[0].clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).cpu().numpy()
        restored_image = Image.fromarray(restored)
        if strength < 1.0:
            restored_image = Image.blend(work, restored_image, strength)
        return restored_image.resize(size, Image.Resampling.LANCZOS) if size != work.size else restored_image


def get_restorer(settings: Settings) -> Restorer:
    """GFPGAN on the settings' device; :class:`MissingWeightsError` when the weights are not on disk."""
    path = ModelLocator(settings).path(GFPGAN_ROLE)
    device = pick_device(settings.device)
    cache = process_cache(settings)
    key = file_key(GFPGAN_ROLE, path, device)
    loader = lambda: load_gfpgan(path, device)  # noqa: E731 - kept with its key
    cache.get(key, loader)  # load now: a damaged file is reported before any work
    return Restorer(cache, key, loader, device, is_random_weights(path))


class HelperNets(torch.nn.Module):
    """facexlib's FaceRestoreHelper as a module (its RetinaFace and ParseNet are the submodules), so it is
    a model cache entry that is sized, moved and unloaded like any other."""

    def __init__(self, helper: Any) -> None:
        super().__init__()
        self.face_det = helper.face_det
        self.face_parse = helper.face_parse
        self.helper = helper


@contextmanager
def _helper(settings: Settings, device: torch.device) -> Iterator[Any]:
    """facexlib's FaceRestoreHelper (RetinaFace + ParseNet), one per weights folder and device, locked on
    the device for the ``with`` block."""
    # Both files must be in one folder under their release names, or facexlib would download them.
    rootpath = facexlib_weights_dir(settings)

    def build() -> HelperNets:
        from facexlib.utils.face_restoration_helper import FaceRestoreHelper

        return HelperNets(FaceRestoreHelper(
            1, face_size=GFPGAN_SIZE, crop_ratio=(1, 1), det_model="retinaface_resnet50", save_ext="png",
            use_parse=True, device=device, model_rootpath=str(rootpath),
        ))

    key = file_key("face_restore_helper", rootpath, device)
    with process_cache(settings).use(key, loaders={key: build}) as parts:
        helper = parts[key].helper
        helper.clean_all()
        yield helper


def load_restore_helper(settings: Settings) -> str:
    """Load and place facexlib's paste-back helper without running it (ZeroGPU start-up); its cache key."""
    device = pick_device(settings.device)
    with _helper(settings, device):
        pass
    return file_key("face_restore_helper", facexlib_weights_dir(settings), device)


def restore_faces(
    image: Image.Image, settings: Settings, strength: float = 1.0, faces: Sequence[DetectedFace] | None = None
) -> Image.Image:
    """Restore every face in ``image`` with GFPGAN and paste it back (same size, RGB).

    ``faces`` skips detection (landmarks from an earlier analysis). An image with no face comes back
    unchanged. Raises :class:`MissingWeightsError` when GFPGAN, RetinaFace or ParseNet weights are absent.
    """
    if not 0.0 <= strength <= 1.0:
        raise InputError(f"Restoration strength must be between 0 and 1, got {strength}.")
    restorer = get_restorer(settings)
    rgb = np.asarray(image.convert("RGB"))
    if strength == 0.0:
        return Image.fromarray(rgb.copy())
    with _lock:  # the helper keeps per-image state
        return _restore_with_helper(rgb, settings, restorer, strength, faces)


def _restore_with_helper(
    rgb: np.ndarray, settings: Settings, restorer: Restorer, strength: float, faces: Sequence[DetectedFace] | None
) -> Image.Image:
    with _helper(settings, restorer.device) as helper:
        return _restore_in(helper, rgb, restorer, strength, faces)


def _restore_in(
    helper: Any, rgb: np.ndarray, restorer: Restorer, strength: float, faces: Sequence[DetectedFace] | None
) -> Image.Image:
    helper.read_image(np.ascontiguousarray(rgb[:, :, ::-1]))
    if faces is None:
        helper.get_face_landmarks_5(only_center_face=False, eye_dist_threshold=5)
    else:
        helper.all_landmarks_5 = [np.asarray(face.landmarks5, dtype=np.float32) for face in faces]
        helper.det_faces = [np.append(face.box, face.score) for face in faces]
    if not helper.all_landmarks_5:
        return Image.fromarray(rgb.copy())
    helper.align_warp_face()
    for cropped_bgr in helper.cropped_faces:
        crop = Image.fromarray(np.ascontiguousarray(cropped_bgr[:, :, ::-1]))
        restored = restorer.restore_aligned(crop, strength)
        helper.add_restored_face(np.ascontiguousarray(np.asarray(restored)[:, :, ::-1]))
    helper.get_inverse_affine(None)
    pasted = helper.paste_faces_to_input_image(upsample_img=None)
    return Image.fromarray(np.clip(pasted, 0, 255).astype(np.uint8)[:, :, ::-1].copy())
