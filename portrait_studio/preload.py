"""Put every model a tab uses on the execution device at start-up (ZeroGPU), not inside a billed call.

On a ZeroGPU Space each model call runs in a worker process forked from the main one and billed by the
second; whatever the worker loads is lost when it ends, so a model loaded on first use would be loaded
again, inside the bill, on every call. The hardware (an H200 slice, ~70 GB) holds everything we ship at
once, so the main process loads and places all of it before the first visitor arrives.

Each group is loaded through the same functions the services use (so the cache keys are the ones a
request looks up). A group whose weights are missing is skipped and reported; its tab explains the same
when someone uses it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from portrait_studio.errors import PortraitStudioError
from portrait_studio.models.manager import ModelManager

log = logging.getLogger(__name__)


@dataclass
class PreloadReport:
    placed: list[str] = field(default_factory=list)  # cache keys (and named module-level models) placed
    skipped: dict[str, str] = field(default_factory=dict)  # group -> why


def _stylize(manager: ModelManager) -> list[str]:
    return manager.preload("base")


def _controlnets(manager: ModelManager) -> list[str]:
    from portrait_studio.stylize.template import CONTROL_ROLES, load_controlnets

    loaders: dict[str, object] = {}
    for control, roles in CONTROL_ROLES.items():
        if len(roles) == 1:
            loaders.update(load_controlnets(manager, control)[0])
    with manager.cache.use(*loaders, loaders=loaders):
        pass
    return list(loaders)


def _motion(manager: ModelManager) -> list[str]:
    from portrait_studio.animate import models

    v3 = models.v3_available(manager)
    adapters = [models.MOTION_ADAPTER_ROLE] + ([models.V3_ROLE] if v3 else [])
    adapters += [models.LIGHTNING_ROLE] if models.fast_available(manager) else []
    keys = []
    for adapter in adapters:
        models.motion_unet(manager, "base", adapter)
        keys.append(models.motion_unet_key("base", adapter))
    if v3:  # portrait mode's keyframe encoder (SparseCtrl RGB), the default for a portrait
        try:
            models.sparse_controlnet(manager, "rgb")
            keys.append(models.sparsectrl_key("rgb"))
        except PortraitStudioError as exc:
            log.warning("preload: SparseCtrl skipped: %s", exc)
    with manager.cache.use(*keys):
        pass
    return keys


def _anime(manager: ModelManager) -> list[str]:
    from portrait_studio.stylize.anime import STYLES, load_generator, role_for, weights_file

    keys = []
    for style in STYLES:
        role = role_for(style)
        path = weights_file(manager.locator.path(role))
        key = f"{role}:generator"
        manager.cache.get(key, lambda path=path, role=role: load_generator(path, role))
        keys.append(key)
    with manager.cache.use(*keys):
        pass
    return keys


def _talk(manager: ModelManager) -> list[str]:
    from portrait_studio.talk.checkpoint import MAPPING_FILES, RENDER_SIZES
    from portrait_studio.talk.engine import talk_nets

    for size in RENDER_SIZES:
        for mode in MAPPING_FILES:
            with talk_nets(manager, size, mode):
                pass
    return [f"sadtalker{size}:*" for size in RENDER_SIZES] + [f"sadtalker:mapping_{m}" for m in MAPPING_FILES]


def _aniportrait(manager: ModelManager) -> list[str]:
    """Talk's second engine: its denoising nets, the ft-MSE VAE and the image encoder."""
    from portrait_studio.talk.aniportrait.engine import ENCODER_KEY, NETS_KEY, VAE_KEY, aniportrait_models

    with aniportrait_models(manager):
        pass
    return [NETS_KEY, VAE_KEY, ENCODER_KEY]


def _faces(manager: ModelManager) -> list[str]:
    """Face analysis, GFPGAN and its paste-back helper (used by Train, Stylize restore and Talk enhance).

    Loaded, never run: a restore pass here would cost start-up seconds per face its detector sees (a random
    tiny detector sees faces even in a black image) and warms nothing that loading does not.
    """
    from portrait_studio.faces.backends import get_face_backend
    from portrait_studio.faces.restore import get_restorer, load_restore_helper

    backend = get_face_backend(manager.settings)  # both backends load their networks when made
    restorer = get_restorer(manager.settings)
    return [f"faces:{backend.name}", restorer.key, load_restore_helper(manager.settings)]


GROUPS: dict[str, Callable[[ModelManager], list[str]]] = {
    "stylize": _stylize,
    "controlnets": _controlnets,
    "animate": _motion,
    "anime": _anime,
    "talk": _talk,
    "aniportrait": _aniportrait,
    "faces": _faces,
}


def preload_every_tab(manager: ModelManager) -> PreloadReport:
    """Load and place every group of :data:`GROUPS`; missing weights skip a group, they do not stop the app."""
    report = PreloadReport()
    for group, load in GROUPS.items():
        try:
            report.placed += load(manager)
        except PortraitStudioError as exc:
            report.skipped[group] = str(exc)
            log.warning("preload: %s skipped: %s", group, exc)
    return report
