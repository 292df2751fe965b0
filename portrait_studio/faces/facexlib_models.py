"""Build facexlib's networks and load their release files (``weights_only=True``, on any device).

facexlib's own ``init_*_model`` helpers download on a miss, load pickles without ``weights_only`` and
(for ArcFace) hard-code CUDA, so we construct the architectures ourselves and load the files that the
:class:`ModelLocator` resolved. :func:`facexlib_weights_dir` gathers them in one folder under their
release names for code that insists on a single ``model_rootpath`` (``FaceRestoreHelper``).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import torch

from portrait_studio.config import Settings
from portrait_studio.errors import MissingWeightsError
from portrait_studio.models.loadguard import guard_weights_file
from portrait_studio.models.locator import ModelLocator, download_command

DETECTION_ROLE = "face_detection"
PARSING_ROLE = "face_parsing"
RECOGNITION_ROLE = "face_recognition"
QUALITY_ROLE = "face_quality"


def new_retinaface(device: torch.device) -> torch.nn.Module:
    from facexlib.detection.retinaface import RetinaFace

    return RetinaFace(network_name="resnet50", half=False, device=device)


def new_parsenet() -> torch.nn.Module:
    from facexlib.parsing.parsenet import ParseNet

    return ParseNet(in_size=512, out_size=512, parsing_ch=19)


def new_arcface() -> torch.nn.Module:
    from facexlib.recognition.arcface_arch import Backbone

    return Backbone(num_layers=50, drop_ratio=0.6, mode="ir_se")


def new_hyperiqa() -> torch.nn.Module:
    from facexlib.assessment.hyperiqa_net import HyperIQA

    return HyperIQA(16, 112, 224, 112, 56, 28, 14, 7)


def read_state_dict(path: Path, role: str) -> dict:
    """A published ``.pth`` state dict, loaded as data only; a damaged file names the role to re-fetch."""
    with guard_weights_file(role, path, download_command(role)):  # refused pickle, truncated, not a checkpoint
        state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise MissingWeightsError(role, str(path), download_command(role), "the file holds no state dict")
    # Checkpoints saved from DataParallel prefix every key with "module.".
    return {(k[7:] if k.startswith("module.") else k): v for k, v in state.items()}


def _load_into(model: torch.nn.Module, state: dict, role: str, path: Path) -> None:
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise MissingWeightsError(
            role, str(path), download_command(role), "the file does not match the expected architecture"
        ) from exc


def _load(role: str, path: Path, device: torch.device, new_model, part=lambda model: model) -> torch.nn.Module:
    """Build ``new_model()`` and load ``path`` strictly into ``part(model)``. Not cached here: callers keep
    the result in the model cache (:mod:`portrait_studio.models.process_cache`)."""
    model = new_model()
    _load_into(part(model), read_state_dict(path, role), role, path)
    return model.to(device).eval()


def load_retinaface(path: Path, device: torch.device) -> torch.nn.Module:
    return _load(DETECTION_ROLE, path, device, lambda: new_retinaface(device))


def load_parsenet(path: Path, device: torch.device) -> torch.nn.Module:
    return _load(PARSING_ROLE, path, device, new_parsenet)


def load_arcface(path: Path, device: torch.device) -> torch.nn.Module:
    return _load(RECOGNITION_ROLE, path, device, new_arcface)


def load_hyperiqa(path: Path, device: torch.device) -> torch.nn.Module:
    # The release file holds the hyper network only; the target network is generated per image.
    return _load(QUALITY_ROLE, path, device, new_hyperiqa, part=lambda model: model.hypernet)


def facexlib_weights_dir(settings: Settings, roles: tuple[str, ...] = (DETECTION_ROLE, PARSING_ROLE)) -> Path:
    """One folder holding ``roles``' files under their release names (symlinks, else copies).

    facexlib looks for ``<model_rootpath>/<release file name>`` and downloads only on a miss, so a
    complete folder means it never touches the network.
    """
    locator = ModelLocator(settings)
    sources = [locator.path(role) for role in roles]
    tag = "tiny" if settings.profile == "tiny" else "default"
    folder = settings.home / "weights" / f"facexlib-{tag}"
    folder.mkdir(parents=True, exist_ok=True)
    for source in sources:
        link = folder / source.name
        if link.is_symlink() and Path(os.readlink(link)) == source.resolve():
            continue
        temporary = folder / f".{source.name}.{os.getpid()}.tmp"
        temporary.unlink(missing_ok=True)
        try:
            temporary.symlink_to(source.resolve())
        except OSError:
            shutil.copyfile(source, temporary)
        os.replace(temporary, link)
    return folder
