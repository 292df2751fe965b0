"""When to emulate a Space build: the fingerprint of what a Space installs, and the one that last built.

What a Space installs: requirements.txt (and pre-requirements.txt, packages.txt if present), the Gradio SDK
and Python the README's front matter names, and on ZeroGPU hardware ``spaces`` (pinned in
requirements-test.txt: the build installs that version).

The build (``test_space_build.py``) takes minutes, so CI runs it only when this fingerprint differs from
the one recorded in ``space_build_verified.txt`` (written by that test when the build passes; commit it)::

    python -m tests.deploy.space_build    # exit 0: verified as it is; exit 1: a requirement file changed
"""

from __future__ import annotations

import hashlib
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
VERIFIED_FILE = Path(__file__).with_name("space_build_verified.txt")
# What a Hugging Face Space reads to build its environment (besides the code it then imports).
BUILD_FILES = ("requirements.txt", "pre-requirements.txt", "packages.txt")
FRONT_MATTER_KEYS = ("sdk", "sdk_version", "python_version")


def front_matter_lines(readme: str) -> list[str]:
    """The README's Spaces settings that choose the build environment (SDK, its version, Python)."""
    match = re.match(r"^---\n(.*?)\n---\n", readme, re.DOTALL)
    block = match.group(1) if match else ""
    return sorted(line.strip() for line in block.splitlines() if line.split(":", 1)[0].strip() in FRONT_MATTER_KEYS)


def requirement_lines(text: str) -> list[str]:
    """A requirement file's lines without comments and blank lines: a reworded comment needs no new build."""
    return [line for raw in text.splitlines() if (line := raw.split(" #", 1)[0].strip()) and not line.startswith("#")]


def fingerprint(repo: Path = REPO) -> str:
    digest = hashlib.sha256()
    for name in BUILD_FILES:
        path = repo / name
        lines = requirement_lines(path.read_text()) if path.is_file() else ["<absent>"]
        digest.update("\n".join([name, *lines, ""]).encode())
    digest.update("\n".join(front_matter_lines((repo / "README.md").read_text())).encode())
    digest.update("".join(spaces_pin(repo)).encode())
    return digest.hexdigest()


def spaces_pin(repo: Path = REPO) -> list[str]:
    """The ``spaces==`` line the build installs for ZeroGPU (a new pin needs a new build)."""
    path = repo / "requirements-test.txt"
    lines = requirement_lines(path.read_text()) if path.is_file() else []
    return [line for line in lines if line.lower().startswith("spaces==")]


def verified(repo: Path = REPO) -> bool:
    recorded = VERIFIED_FILE.read_text().split() if VERIFIED_FILE.is_file() else []
    return bool(recorded) and recorded[0] == fingerprint(repo)


def record_verified(repo: Path = REPO) -> None:
    VERIFIED_FILE.write_text(f"{fingerprint(repo)}  sha256 of {', '.join(BUILD_FILES)}, the README's "
                             f"{', '.join(FRONT_MATTER_KEYS)} and the spaces pin: the last set a Space build "
                             f"passed with\n")


if __name__ == "__main__":
    if verified():
        print("space build: verified for these requirement files")
        sys.exit(0)
    print("space build: a requirement file changed since the last verified Space build")
    sys.exit(1)
