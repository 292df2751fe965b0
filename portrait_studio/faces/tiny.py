"""Random-weight stand-ins for the facexlib and GFPGAN release files.

Each builder writes the real architecture's state dict under the real file name in the published
container format, so the same loader reads a tiny file and a downloaded one. Outputs are noise; the
locator adds the RANDOM_WEIGHTS.json marker beside them.
"""

from __future__ import annotations

from pathlib import Path

import torch

from portrait_studio.models.roles import Role


def _save(state: dict, folder: Path, role: Role) -> None:
    target = folder / role.tiny_path
    target.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, target)


def build_face_detection(folder: Path, role: Role) -> None:
    """RetinaFace ResNet-50: a plain state dict (detection_Resnet50_Final.pth)."""
    from portrait_studio.faces.facexlib_models import new_retinaface

    torch.manual_seed(0)
    _save(new_retinaface(torch.device("cpu")).state_dict(), folder, role)


def build_face_parsing(folder: Path, role: Role) -> None:
    """ParseNet 512 -> 19 classes: a plain state dict (parsing_parsenet.pth)."""
    from portrait_studio.faces.facexlib_models import new_parsenet

    torch.manual_seed(0)
    _save(new_parsenet().state_dict(), folder, role)


def build_face_recognition(folder: Path, role: Role) -> None:
    """ArcFace IR-SE50: a plain state dict (recognition_arcface_ir_se50.pth)."""
    from portrait_studio.faces.facexlib_models import new_arcface

    torch.manual_seed(0)
    _save(new_arcface().state_dict(), folder, role)


def build_face_quality(folder: Path, role: Role) -> None:
    """hyperIQA: the state dict of its ``hypernet`` part, as published (assessment_hyperIQA.pth)."""
    from portrait_studio.faces.facexlib_models import new_hyperiqa

    torch.manual_seed(0)
    _save(new_hyperiqa().hypernet.state_dict(), folder, role)


def build_gfpgan(folder: Path, role: Role) -> None:
    """GFPGANv1Clean (v1.3/v1.4 layout): ``{"params_ema": state_dict}`` like the release file."""
    from portrait_studio.faces.restore import new_gfpgan

    torch.manual_seed(0)
    _save({"params_ema": new_gfpgan().state_dict()}, folder, role)
