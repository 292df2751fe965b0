"""Loading the talk networks through the model cache, and rendering frames from coefficients."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from portrait_studio.errors import BadWeightsFileError, MissingWeightsError
from portrait_studio.models.loadguard import guard_weights_file
from portrait_studio.models.locator import download_command, is_random_weights
from portrait_studio.models.manager import ModelManager
from portrait_studio.progress import CancelToken, ProgressFn
from portrait_studio.talk.checkpoint import (
    MAPPING_FILES,
    PARTS,
    CheckpointMismatch,
    checkpoint_name,
    convert_mapping_pickle,
    load_mapping,
    load_part,
)
from portrait_studio.talk.motion import semantic_windows, source_window
from portrait_studio.talk.nets.keypoints import transform_keypoints

ROLE = "sadtalker"


@dataclass
class TalkNets:
    kp_extractor: torch.nn.Module
    generator: torch.nn.Module
    audio2exp: torch.nn.Module
    audio2pose: torch.nn.Module
    face_3drecon: torch.nn.Module
    mapping: torch.nn.Module
    device: torch.device
    random_weights: bool


def _mapping_safetensors(manager: ModelManager, source: Path) -> Path:
    """Our safetensors copy of a published mapping pickle (converted once, outside the hub cache)."""
    digest = hashlib.sha1(str(source.resolve()).encode()).hexdigest()[:10]
    target = manager.settings.weights_dir / ROLE / f"{source.name.split('-')[0]}-{digest}.safetensors"
    if not target.is_file() or target.stat().st_mtime < source.stat().st_mtime:
        convert_mapping_pickle(source, target)
    return target


def _paths(manager: ModelManager, size: int, mode: str) -> tuple[Path, Path]:
    folder = manager.locator.path(ROLE)
    checkpoint = folder / checkpoint_name(size)
    mapping = folder / MAPPING_FILES[mode]
    for path in (checkpoint, mapping):
        if not path.is_file():
            raise MissingWeightsError(ROLE, str(folder), download_command(ROLE), f"{path.name} is missing")
    return checkpoint, mapping


@contextmanager
def talk_nets(manager: ModelManager, size: int, mode: str) -> Iterator[TalkNets]:
    """Load (once, via the cache) and lock every talk network on the execution device."""
    checkpoint, mapping_pickle = _paths(manager, size, mode)
    tag = f"{ROLE}{size}"

    def loader(part: str):  # noqa: ANN202 - returns a module
        def load() -> torch.nn.Module:
            source = mapping_pickle if part == "mapping" else checkpoint
            try:
                with guard_weights_file(ROLE, source, download_command(ROLE)):
                    if part == "mapping":
                        return load_mapping(_mapping_safetensors(manager, mapping_pickle))
                    return load_part(checkpoint, part)
            except BadWeightsFileError as exc:
                if isinstance(exc.__cause__, CheckpointMismatch):  # keys or shapes: say which, not "damaged"
                    raise BadWeightsFileError(
                        ROLE, str(source), download_command(ROLE), str(exc.__cause__),
                        f"it is not the published file; fetch it again with `{download_command(ROLE)}`",
                    ) from exc.__cause__
                raise

        return load

    keys = {part: f"{tag}:{part}" for part in PARTS}
    keys["mapping"] = f"{ROLE}:mapping_{mode}"
    loaders = {key: loader(part) for part, key in keys.items()}
    with manager.cache.use(*keys.values(), loaders=loaders) as loaded:
        yield TalkNets(
            **{part: loaded[key] for part, key in keys.items()},
            device=manager.device,
            random_weights=is_random_weights(checkpoint),
        )


@torch.no_grad()
def render_frames(
    nets: TalkNets,
    source_image: np.ndarray,
    source_coeffs: np.ndarray,
    driving_coeffs: np.ndarray,
    progress: ProgressFn,
    cancel: CancelToken,
    batch_size: int = 4,
) -> Iterator[np.ndarray]:
    """Yield one uint8 RGB frame per row of ``driving_coeffs`` ((t, 70) or (t, 73)).

    ``source_image`` is the square crop as uint8 (s, s, 3). The source's feature volume and
    keypoints are computed once; each frame only runs the mapping net and the warping decoder.
    """
    device = nets.device
    image = torch.from_numpy(source_image.astype(np.float32) / 255.0).permute(2, 0, 1)[None].to(device)
    canonical = nets.kp_extractor(image)
    source_motion = nets.mapping(torch.from_numpy(source_window(source_coeffs))[None].to(device))
    kp_source = transform_keypoints(canonical, source_motion)
    volume = nets.generator.encode(image)
    windows = semantic_windows(driving_coeffs)
    total = len(windows)
    for start in range(0, total, batch_size):
        cancel.raise_if_cancelled()
        chunk = torch.from_numpy(windows[start:start + batch_size]).to(device)
        b = chunk.shape[0]
        kp_driving = transform_keypoints(canonical.expand(b, -1, -1), nets.mapping(chunk))
        out = nets.generator.render(volume.expand(b, -1, -1, -1, -1), kp_driving, kp_source.expand(b, -1, -1))
        frames = (out.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
        for i, frame in enumerate(frames):
            progress((start + i + 1) / total, f"frame {start + i + 1}/{total}")
            yield frame
