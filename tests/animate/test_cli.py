"""``python -m portrait_studio animate`` on the tiny profile."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

from portrait_studio.cli import main
from portrait_studio.media.video import probe_video


def test_cli_writes_mp4_gif_and_frames(tiny_home: Path, tmp_path: Path, capsys, likeness_lora: Path) -> None:
    from PIL import Image
    from skimage import data

    portrait = tmp_path / "me.png"
    Image.fromarray(data.astronaut()).save(portrait)
    out = tmp_path / "clips" / "hello.mp4"
    code = main([
        "animate", "--profile", "tiny", "--home", str(tiny_home), "--prompt", "a portrait",
        "--likeness", str(likeness_lora), "--motion", "zoom-in:0.8", "--motion", "pan-left",
        "--frames", "4", "--fps", "6", "--steps", "4", "--width", "32", "--height", "32", "--seed", "3",
        "--from", str(portrait), "--mode", "video2video", "--strength", "0.5", "--out", str(out),
    ])
    printed = capsys.readouterr().out
    assert code == 0, printed
    info = probe_video(out)
    assert (info.frames, info.fps) == (4, 6.0)
    assert (out.parent / "hello.gif").is_file() and (out.parent / "hello-frames.zip").is_file()
    assert "random-weight test models" in printed and "seed 3" in printed


def _metadata(zip_path: Path) -> dict:
    with zipfile.ZipFile(zip_path) as archive:
        return json.loads(archive.read("metadata.json"))


def test_cli_animates_a_portrait_with_sparsectrl_by_default(tiny_home: Path, tmp_path: Path, capsys) -> None:
    """The acceptance command: ``animate --from PORTRAIT --prompt ... --frames 8 --out a.mp4``; then --to."""
    from PIL import Image
    from skimage import data

    portrait, end = tmp_path / "me.png", tmp_path / "end.png"
    Image.fromarray(data.astronaut()).save(portrait)
    Image.fromarray(data.coffee()).save(end)
    common = ["animate", "--profile", "tiny", "--home", str(tiny_home), "--prompt", "a portrait, smiling",
              "--frames", "8", "--steps", "2", "--width", "32", "--height", "32", "--seed", "1",
              "--from", str(portrait)]
    assert main(common + ["--out", str(tmp_path / "a.mp4")]) == 0, capsys.readouterr().err
    info = probe_video(tmp_path / "a.mp4")
    assert (info.frames, info.codec, info.pix_fmt) == (8, "h264", "yuv420p")
    meta = _metadata(tmp_path / "a-frames.zip")
    assert (meta["mode"], meta["keyframes"]) == ("sparsectrl", [0])
    assert meta["motion_model"] == "tiny-random/motion_adapter_v3"

    code = main(common + ["--to", str(end), "--keyframe-strength", "0.8", "--out", str(tmp_path / "b.mp4")])
    assert code == 0, capsys.readouterr().err
    assert probe_video(tmp_path / "b.mp4").frames == 8
    meta = _metadata(tmp_path / "b-frames.zip")
    assert (meta["keyframes"], meta["keyframe_strength"], meta["end_image"]) == ([0, 7], 0.8, True)


def test_cli_takes_prompt_and_negative_from_a_stylize_preset(tiny_home: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "preset.mp4"
    code = main(["animate", "--profile", "tiny", "--home", str(tiny_home), "--preset", "film-portrait",
                 "--frames", "2", "--steps", "1", "--width", "32", "--height", "32", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    with zipfile.ZipFile(tmp_path / "preset-frames.zip") as archive:
        metadata = json.loads(archive.read("metadata.json"))
    assert metadata["prompt"].startswith("35mm film photograph of a person")
    assert "blurry" in metadata["negative_prompt"]


def test_cli_bad_input_exits_2_with_one_line(tiny_home: Path, tmp_path: Path, capsys) -> None:
    common = ["animate", "--profile", "tiny", "--home", str(tiny_home), "--out", str(tmp_path / "x.mp4")]
    prompt = ["--prompt", "a portrait"]
    cases = [
        (prompt + ["--out", str(tmp_path / "x.gif")], "--out must name an .mp4 file"),
        (prompt + ["--frames", "0"], "Frames must be between"),
        (prompt + ["--steps", "0"], "Steps must be between"),
        (prompt + ["--motion", "spin:1"], "Unknown camera motion 'spin'"),
        (prompt + ["--likeness", "nobody"], "nobody"),
        (prompt + ["--from", str(tmp_path / "none.png")], "not found"),
        (["--preset", "no-such-style"], "Unknown style preset"),
        (prompt + ["--to", str(tmp_path / "end.png")], "--to needs --from"),
        (prompt + ["--from-likeness"], "--from-likeness uses the reference face of --likeness"),
    ]
    for extra, message in cases:
        assert main(common + extra) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err, err
    assert not list(tmp_path.glob("x.*"))
