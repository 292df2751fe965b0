"""ArcFace gets its crop in the channel order its weights were trained on; thresholds come from settings."""

from __future__ import annotations

import numpy as np
import pytest

from portrait_studio.config import Settings, settings_from_env
from portrait_studio.errors import InputError
from portrait_studio.faces.backends import get_face_backend
from portrait_studio.faces.facexlib_backend import arcface_input


def test_arcface_input_is_bgr_scaled_to_minus_one_one() -> None:
    crop = np.zeros((112, 112, 3), np.uint8)
    crop[..., 0] = 255  # pure red in RGB
    crop[..., 2] = 0
    tensor = arcface_input(crop)
    assert tuple(tensor.shape) == (1, 3, 112, 112)
    # channel 0 is blue (-1), channel 2 is red (+1): BGR order.
    assert float(tensor[0, 0].max()) == -1.0 and float(tensor[0, 2].min()) == 1.0
    assert float(tensor[0, 1].mean()) == -1.0


def test_identity_thresholds_are_settings_with_documented_defaults(tmp_path) -> None:
    settings = Settings(home=tmp_path)
    assert (settings.identity_threshold_facexlib, settings.identity_threshold_dlib) == (0.3, 0.5)
    env = {"PORTRAIT_STUDIO_IDENTITY_THRESHOLD_DLIB": "0.55", "PORTRAIT_STUDIO_FACE_BACKEND": "dlib"}
    tuned = settings_from_env(env, home=tmp_path)
    assert get_face_backend(tuned).same_person_threshold == 0.55
    assert get_face_backend(settings_from_env({"PORTRAIT_STUDIO_FACE_BACKEND": "dlib"}, home=tmp_path)) \
        .same_person_threshold == 0.5
    with pytest.raises(InputError, match="identity_threshold_dlib"):
        settings_from_env({"PORTRAIT_STUDIO_IDENTITY_THRESHOLD_DLIB": "1.5"}, home=tmp_path)


def test_a_damaged_facexlib_file_names_the_file_and_the_fix(tmp_path) -> None:
    import torch

    from portrait_studio.errors import BadWeightsFileError
    from portrait_studio.faces.facexlib_models import read_state_dict

    path = tmp_path / "recognition_arcface_ir_se50.pth"
    torch.save({"input_layer.0.weight": torch.zeros(64, 3, 3, 3)}, path)
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(BadWeightsFileError, match=r"recognition_arcface_ir_se50\.pth cannot be loaded \(the file "
                       r"is truncated or damaged.*download --roles face_recognition"):
        read_state_dict(path, "face_recognition")
