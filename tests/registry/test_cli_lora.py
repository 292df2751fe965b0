"""``python -m portrait_studio lora ...``: the command-line contract, in process and as a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from portrait_studio.cli import main
from tests.registry.lora_test_files import lora_tensors, write_kohya

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture()
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture):  # noqa: ANN201
    """Run the CLI in process on a fresh tiny-profile home; returns (exit code, stdout, stderr)."""
    for key in [k for k in os.environ if k.startswith("PORTRAIT_STUDIO_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("PORTRAIT_STUDIO_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PORTRAIT_STUDIO_PROFILE", "tiny")

    def run(*argv: str) -> tuple[int, str, str]:
        code = main(list(argv))
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


def test_import_list_export_rename_delete(cli, tmp_path: Path, base_shapes: dict) -> None:  # noqa: ANN001
    source = write_kohya(tmp_path / "My Style.safetensors", lora_tensors(base_shapes), alpha=4,
                         metadata={"modelspec.trigger_phrase": "mystyle"})
    assert cli("lora", "list", "--json")[:2] == (0, "[]\n")
    code, out, _ = cli("lora", "import", str(source), "--name", "Anna")
    assert code == 0 and "anna" in out
    code, out, _ = cli("lora", "list", "--json")
    listed = json.loads(out)
    summary = [(r["name"], r["slug"], r["trigger"], r["source"]) for r in listed]
    assert summary == [("Anna", "anna", "mystyle", "imported")]
    assert Path(listed[0]["lora_path"]).is_file()

    out_file = tmp_path / "exported" / "anna_kohya.safetensors"
    code, out, _ = cli("lora", "export", "anna", "--format", "kohya", "--out", str(out_file))
    assert code == 0 and out.strip() == str(out_file) and out_file.is_file()
    code, out, _ = cli("lora", "export", "Anna", "--format", "diffusers", "--out", str(tmp_path))
    assert code == 0 and Path(out.strip()).is_file()

    assert cli("lora", "rename", "anna", "Anna B")[0] == 0
    code, out, _ = cli("lora", "list")
    assert "anna-b" in out and "Anna B" in out
    assert cli("lora", "delete", "anna-b")[0] == 0
    assert json.loads(cli("lora", "list", "--json")[1]) == []


@pytest.mark.parametrize(
    "make_bad, reason",
    [
        (lambda p: p.write_bytes(b"\x80\x04\x95junk"), "pickle"),
        (lambda p: p.write_bytes(b""), "empty"),
        (lambda p: p.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{broken}"), "not valid JSON"),
    ],
)
def test_bad_import_exits_2_with_one_line(cli, tmp_path: Path, make_bad, reason: str) -> None:  # noqa: ANN001
    bad = tmp_path / "bad.safetensors"
    make_bad(bad)
    code, out, err = cli("lora", "import", str(bad))
    assert code == 2
    assert err.count("\n") == 1 and "bad.safetensors" in err and reason in err
    assert "Traceback" not in err


def test_incompatible_lora_is_refused_against_the_active_base(cli, tmp_path: Path) -> None:  # noqa: ANN001
    # Shaped for real SD1.5 (320-wide attention), not the tiny base model of this profile.
    big = {"unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q": (320, 320)}
    source = write_kohya(tmp_path / "sd15.safetensors", _pairs(big), alpha=4)
    code, _, err = cli("lora", "import", str(source))
    assert code == 2 and "in the base model" in err and "sd15.safetensors" in err


def _pairs(shapes: dict) -> dict:
    import torch

    return {t: (torch.zeros(4, i), torch.zeros(o, 4)) for t, (o, i) in shapes.items()}


def test_unknown_names_exit_2(cli) -> None:  # noqa: ANN001
    for argv in (("lora", "delete", "ghost"), ("lora", "rename", "ghost", "x"),
                 ("lora", "export", "ghost", "--out", "x.safetensors")):
        code, _, err = cli(*argv)
        assert code == 2 and "No LoRA named 'ghost'" in err and err.count("\n") == 1


def test_real_subprocess_has_no_traceback(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTRAIT_STUDIO_")}
    env.update(PORTRAIT_STUDIO_HOME=str(tmp_path / "home"), PYTHONPATH=str(REPO))
    bad = tmp_path / "x.pt"
    bad.write_bytes(b"PK\x03\x04")
    result = subprocess.run(
        [sys.executable, "-m", "portrait_studio", "lora", "import", str(bad)],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert "only .safetensors" in result.stderr and "Traceback" not in result.stderr
