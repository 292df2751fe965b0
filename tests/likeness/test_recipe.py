"""The Balanced recipe end to end on the tiny model: text-encoder and feed-forward LoRA, a trigger of its own
in the manifest and in kohya metadata, kept through export and import."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from safetensors import safe_open

from portrait_studio.cli import main
from portrait_studio.config import Settings
from portrait_studio.registry import LoraRegistry
from tests.likeness.helpers import photo_variants

dlib_available = pytest.importorskip("portrait_studio.faces.dlib_backend").dlib_available
pytestmark = pytest.mark.skipif(not dlib_available(), reason="dlib face models are not installed")


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return photo_variants(tmp_path_factory.mktemp("grace"), count=5)


def train(home: Path, name: str, photos: list[Path]) -> str:
    code = main(["train", "--profile", "tiny", "--home", str(home), "--name", name, "--preset", "Balanced",
                 "--steps", "2", "--resolution", "32", "--validation-steps", "1", "--rank", "4",
                 *map(str, photos)])
    assert code == 0
    return name


def test_balanced_lora_has_text_encoder_and_feed_forward_keys_and_its_own_trigger(
    job_settings: Settings, photos, tmp_path: Path, capsys
) -> None:
    settings = job_settings.replace(face_backend="dlib")
    home = settings.home
    train(home, "Ada", photos)
    train(home, "Ada", photos)  # the same name again: a second likeness, with another trigger
    capsys.readouterr()
    registry = LoraRegistry(settings.registry_dir)
    first, second = sorted(registry.list("local"), key=lambda r: r.slug)
    assert first.trigger != second.trigger and first.trigger.startswith("ps") and first.trigger != "ohwx"
    manifest = json.loads((first.folder / "manifest.json").read_text())
    assert manifest["trigger"] == first.trigger and manifest["extra"]["preset"] == "Balanced"
    # The identity centre the checkpoints were scored with is kept: best-of-N scores with it too.
    assert first.identity_path is not None and manifest["extra"]["face_backend"] == "dlib"

    with safe_open(str(first.lora_path), framework="pt") as handle:
        keys = list(handle.keys())
    assert any(k.startswith("text_encoder.") and ".mlp.fc1." in k for k in keys)
    assert any(k.startswith("text_encoder.") and ".self_attn.q_proj." in k for k in keys)
    assert any(".ff.net.0.proj." in k for k in keys) and any(".ff.net.2." in k for k in keys)
    assert any(".proj_in." in k for k in keys) and any(".attn2.to_k." in k for k in keys)

    exported = registry.export("local", first.slug, "kohya", tmp_path / "ada.safetensors")
    with safe_open(str(exported), framework="pt") as handle:
        metadata = handle.metadata()
        kohya_keys = list(handle.keys())
    assert metadata["modelspec.trigger_phrase"] == first.trigger
    assert json.loads(metadata["ss_tag_frequency"]) == {"likeness": {first.trigger: 1}}
    assert any(k.startswith("lora_te_") for k in kohya_keys) and any("_ff_net_2." in k for k in kohya_keys)

    # The LoRA loads into the pipeline (conv 1x1 proj_in/out included) and changes the picture.
    import numpy as np
    import torch

    from portrait_studio.models.manager import ModelManager
    from portrait_studio.registry import loras_applied

    def render(pipe) -> np.ndarray:  # noqa: ANN001
        return pipe(f"{first.trigger} person", num_inference_steps=2, height=32, width=32, output_type="np",
                    generator=torch.Generator().manual_seed(0)).images[0]

    with ModelManager(settings).sd_pipeline() as pipe:
        plain = render(pipe)
        with loras_applied(pipe, [(first.lora_path, 1.0)]):
            assert np.abs(render(pipe) - plain).max() > 1e-4

    again = registry.import_file("someone-else", exported, name="Ada again")
    assert again.trigger == first.trigger
    with safe_open(str(again.lora_path), framework="pt") as handle:
        assert sorted(handle.keys()) == sorted(keys)
