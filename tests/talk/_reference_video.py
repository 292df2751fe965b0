"""A reference video for the Talk tests: grace_hopper moving right and turning, with the project's MP4 writer."""

from __future__ import annotations

from pathlib import Path

from PIL import Image


def moving_face_video(face: Image.Image, path: Path, frames: int = 10) -> Path:
    """``frames`` frames of ``face`` shifted 4 px right and turned 1.5 degrees further each frame, at 30 fps."""
    from portrait_studio.media.video import write_mp4

    images = []
    for i in range(frames):
        canvas = Image.new("RGB", (420, 400), (120, 120, 120))
        turned = face.resize((256, 300)).rotate(1.5 * i, Image.BICUBIC, fillcolor=(120, 120, 120))
        canvas.paste(turned, (40 + 4 * i, 50))
        images.append(canvas)
    return write_mp4(images, path, 30)
