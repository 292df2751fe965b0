"""facexlib backend and GFPGAN restoration on RANDOM weights saved under the real release file names.

These check the plumbing (files, formats, loaders, shapes, paste-back), not the models' judgement:
landmarks are supplied from dlib because a random RetinaFace finds noise.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from portrait_studio.config import Settings
from portrait_studio.errors import InputError, MissingWeightsError
from portrait_studio.faces import facexlib_models as fm
from portrait_studio.faces.backends import choose_backend_name, get_face_backend
from portrait_studio.faces.dlib_backend import DlibBackend
from portrait_studio.faces.pipeline import prepare_faces
from portrait_studio.faces.restore import restore_faces
from portrait_studio.models.locator import ModelLocator, is_random_weights
from portrait_studio.models.roles import ROLES
from tests.conftest import home_with_session_models

from .conftest import grace_hopper

FACE_ROLES = ("face_detection", "face_parsing", "face_recognition", "face_quality", "gfpgan")


@pytest.fixture(scope="module")
def tiny_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    home = home_with_session_models(tmp_path_factory, "tinyhome")
    settings = Settings(home=home, profile="tiny", face_backend="facexlib")
    locator = ModelLocator(settings)
    for role in FACE_ROLES:
        locator.path(role)  # builds the random model once for the module
    return settings


@pytest.fixture(scope="module")
def grace_faces():
    image = grace_hopper()
    return image, DlibBackend().detect(np.asarray(image))


def test_tiny_files_use_release_names_and_formats(tiny_settings: Settings) -> None:
    locator = ModelLocator(tiny_settings)
    for role in FACE_ROLES:
        path = locator.path(role)
        assert path.name == ROLES[role].source.filename == Path(ROLES[role].source.url).name
        assert is_random_weights(path)
        state = torch.load(path, map_location="cpu", weights_only=True)
        assert isinstance(state, dict)
    gfpgan = torch.load(locator.path("gfpgan"), map_location="cpu", weights_only=True)
    assert list(gfpgan) == ["params_ema"]
    assert "conv_body_first.weight" in gfpgan["params_ema"]


def test_weights_dir_gathers_files_for_facexlib(tiny_settings: Settings) -> None:
    folder = fm.facexlib_weights_dir(tiny_settings)
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["detection_Resnet50_Final.pth", "parsing_parsenet.pth"]
    assert fm.facexlib_weights_dir(tiny_settings) == folder  # idempotent


def test_backend_choice(tiny_settings: Settings, tmp_path: Path) -> None:
    assert choose_backend_name(tiny_settings) == "facexlib"
    assert choose_backend_name(tiny_settings.replace(face_backend="auto")) == "dlib"  # tiny facexlib is noise
    offline = Settings(home=tmp_path, offline=True)
    assert choose_backend_name(offline) == "dlib"
    with pytest.raises(MissingWeightsError, match="face_detection"):
        get_face_backend(offline.replace(face_backend="facexlib"))


@pytest.mark.slow
def test_facexlib_backend_shapes(tiny_settings: Settings, grace_faces) -> None:
    image, faces = grace_faces
    backend = get_face_backend(tiny_settings)
    assert backend.name == "facexlib" and backend.random_weights
    rgb = np.asarray(image.resize((128, 150)))
    detected = backend.detect(rgb)
    assert isinstance(detected, list) and len(detected) <= 20
    for face in detected:
        assert face.landmarks5.shape == (5, 2) and face.box.shape == (4,)
    embedding = backend.embed(np.asarray(image), faces[0])
    assert embedding.shape == (512,) and embedding.dtype == np.float32
    assert np.isclose(np.linalg.norm(embedding), 1.0, atol=1e-5)
    assert backend.similarity(embedding, embedding) == pytest.approx(1.0, abs=1e-5)
    crop = image.crop((100, 100, 400, 400)).resize((256, 256))
    quality = backend.quality(crop)
    assert 0.0 <= quality <= 1.0
    mask = backend.face_mask(crop)
    assert mask.mode == "L" and mask.size == (256, 256)


def test_pipeline_runs_on_facexlib_with_supplied_landmarks(
    tiny_settings: Settings, grace_faces, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    image, faces = grace_faces
    backend = get_face_backend(tiny_settings)
    monkeypatch.setattr(backend, "detect", lambda rgb: [f.scaled(rgb.shape[1] / image.width) for f in faces])
    # Parsing and hyperIQA are covered above; on CPU they cost seconds per crop, so the run uses fallbacks.
    monkeypatch.delitem(backend._nets, "parser")
    monkeypatch.delitem(backend._nets, "hyperiqa")
    paths = []
    for i, side in enumerate((512, 480, 500)):
        path = tmp_path / f"grace_{i}.png"
        image.resize((side, round(side * image.height / image.width))).save(path)
        paths.append(path)
    result = prepare_faces(paths, tmp_path / "out", tiny_settings, crop_size=128, restore=False)
    assert result.backend == "facexlib" and result.random_weights
    assert result.report["random_weights"] is True
    assert any("RANDOM" in w for w in result.warnings)
    assert len(result.kept) == 3
    with Image.open(result.out_dir / "masks" / result.kept[0].crop_name) as mask:
        assert mask.mode == "L" and mask.size == (128, 128)
    assert result.reference_embedding.shape == (512,)


@pytest.mark.slow
def test_restore_faces_pastes_back_and_blends(tiny_settings: Settings, grace_faces) -> None:
    image, faces = grace_faces
    restored = restore_faces(image, tiny_settings, strength=1.0, faces=faces)
    assert restored.size == image.size and restored.mode == "RGB"
    before, after = np.asarray(image, np.int16), np.asarray(restored, np.int16)
    x0, y0, x1, y1 = (int(v) for v in faces[0].box)
    assert np.abs(after[y0:y1, x0:x1] - before[y0:y1, x0:x1]).mean() > 5  # the face was replaced
    assert np.abs(after[:20, :20] - before[:20, :20]).mean() < 1  # the background was not
    untouched = restore_faces(image, tiny_settings, strength=0.0, faces=faces)
    assert np.array_equal(np.asarray(untouched), np.asarray(image))
    with pytest.raises(InputError, match="strength"):
        restore_faces(image, tiny_settings, strength=1.5)


def test_gfpgan_built_without_random_init_holds_exactly_the_file(tiny_settings: Settings) -> None:
    """It is built on the meta device and given uninitialised storage: every tensor must come from the file."""
    from portrait_studio.faces.restore import GFPGAN_ROLE, load_gfpgan

    path = ModelLocator(tiny_settings).path(GFPGAN_ROLE)
    model = load_gfpgan(path, torch.device("cpu"))
    in_file = fm.read_state_dict(path, GFPGAN_ROLE)["params_ema"]
    loaded = model.state_dict()
    assert loaded.keys() == in_file.keys()
    assert all(torch.equal(loaded[key], in_file[key]) for key in in_file)
    assert {name for name, _ in model.named_buffers()} <= loaded.keys()  # no buffer the file does not fill


def test_restore_without_weights_is_a_missing_weights_error(tmp_path: Path) -> None:
    with pytest.raises(MissingWeightsError, match="gfpgan"):
        restore_faces(grace_hopper(), Settings(home=tmp_path, offline=True))


def test_damaged_weights_name_the_role(tmp_path: Path) -> None:
    bad = tmp_path / "detection_Resnet50_Final.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(MissingWeightsError, match="face_detection"):
        fm.load_retinaface(bad, torch.device("cpu"))


def test_compat_alias_for_basicsr() -> None:
    from portrait_studio.faces.compat import install_torchvision_alias

    install_torchvision_alias()
    module = sys.modules["torchvision.transforms.functional_tensor"]
    assert callable(module.rgb_to_grayscale)
    import basicsr.data.degradations  # noqa: F401 - fails without the alias on current torchvision
