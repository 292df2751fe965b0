"""The face pipeline's report: a JSON-able summary, a contact sheet image, and the not-enough error."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

from PIL import Image, ImageDraw, ImageFont

from portrait_studio.errors import InputError
from portrait_studio.faces.entry import KEPT, FaceEntry

TILE_WIDTH = 260
PHOTO_HEIGHT = 200
CROP_SIDE = 96
TEXT_HEIGHT = 86
COLUMNS = 4
_GREEN = (30, 150, 60)
_RED = (200, 40, 40)
_GOLD = (220, 160, 0)


class NotEnoughFacesError(InputError):
    """Too few photos survived; ``entries`` and ``contact_sheet`` say why for each one."""

    def __init__(self, message: str, entries: Sequence[FaceEntry], contact_sheet: Image.Image, report: dict) -> None:
        super().__init__(message)
        self.entries = list(entries)
        self.contact_sheet = contact_sheet
        self.report = report


def not_enough_message(entries: Sequence[FaceEntry], kept: int, min_keep: int) -> str:
    reasons = "; ".join(f"{e.name}: {e.reason.rstrip('.')}" for e in entries if e.status != KEPT)
    return (
        f"Only {kept} of {len(entries)} photos can be used for training (at least {min_keep} needed). "
        f"{reasons}. What to do: add clear, well-lit photos where only your face is visible, looking "
        f"roughly at the camera, with the face at least a few hundred pixels wide."
    )


def build_report(
    entries: Sequence[FaceEntry], *, backend: str, random_weights: bool, reference: FaceEntry | None,
    settings_used: dict, warnings: Sequence[str],
) -> dict:
    return {
        "backend": backend,
        "random_weights": random_weights,
        "settings": settings_used,
        "kept": sum(1 for e in entries if e.status == KEPT),
        "total": len(entries),
        "reference": "reference.png" if reference is not None else None,
        "reference_source": str(reference.path) if reference is not None else None,
        "reference_embedding": "reference_embedding.npy" if reference is not None else None,
        "warnings": list(warnings),
        "inputs": [e.to_json() for e in entries],
    }


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has one fixed-size bitmap font
        return ImageFont.load_default()


def _tile(entry: FaceEntry, is_reference: bool) -> Image.Image:
    tile = Image.new("RGB", (TILE_WIDTH, PHOTO_HEIGHT + TEXT_HEIGHT), (245, 245, 245))
    draw = ImageDraw.Draw(tile)
    if entry.preview is not None:
        preview = entry.preview.copy()
        preview.thumbnail((TILE_WIDTH, PHOTO_HEIGHT))
        tile.paste(preview, ((TILE_WIDTH - preview.width) // 2, (PHOTO_HEIGHT - preview.height) // 2))
    else:
        draw.text((10, PHOTO_HEIGHT // 2), "cannot be read", fill=_RED, font=_font(14))
    if entry.crop is not None:
        crop = entry.crop.resize((CROP_SIDE, CROP_SIDE))
        tile.paste(crop, (TILE_WIDTH - CROP_SIDE - 2, PHOTO_HEIGHT - CROP_SIDE - 2))
        draw.rectangle(
            [TILE_WIDTH - CROP_SIDE - 3, PHOTO_HEIGHT - CROP_SIDE - 3, TILE_WIDTH - 2, PHOTO_HEIGHT - 2],
            outline=_GOLD if is_reference else (255, 255, 255), width=2,
        )
    colour = _GREEN if entry.status == KEPT else _RED
    draw.rectangle([0, 0, TILE_WIDTH - 1, PHOTO_HEIGHT + TEXT_HEIGHT - 1], outline=colour, width=3)
    verdict = ("REFERENCE" if is_reference else "KEPT") if entry.status == KEPT else "REJECTED"
    small = _font(11)
    draw.text((6, PHOTO_HEIGHT + 3), f"{verdict}  {entry.name[:26]}", fill=colour, font=_font(13))
    numbers = []
    if entry.score is not None:
        numbers.append(f"score {entry.score:.2f}")
    if entry.similarity is not None:
        numbers.append(f"sim {entry.similarity:.2f}")
    if entry.quality is not None:
        numbers.append(f"qual {entry.quality:.2f}")
    if entry.angle is not None:
        numbers.append(f"angle {entry.angle:.2f}")
    draw.text((6, PHOTO_HEIGHT + 20), "  ".join(numbers), fill=(40, 40, 40), font=small)
    lines = textwrap.wrap(entry.reason, width=40)[:3]
    for i, line in enumerate(lines):
        draw.text((6, PHOTO_HEIGHT + 36 + 15 * i), line, fill=(60, 60, 60), font=small)
    return tile


def contact_sheet(entries: Sequence[FaceEntry], reference: FaceEntry | None, title: str = "") -> Image.Image:
    """A grid with one tile per input: the photo with boxes and landmarks, the crop, scores, the verdict."""
    count = max(1, len(entries))
    columns = min(COLUMNS, count)
    rows = (count + columns - 1) // columns
    header = 28 if title else 0
    gap = 6
    tile_height = PHOTO_HEIGHT + TEXT_HEIGHT
    sheet = Image.new(
        "RGB", (columns * (TILE_WIDTH + gap) + gap, header + rows * (tile_height + gap) + gap), (255, 255, 255)
    )
    if title:
        ImageDraw.Draw(sheet).text((gap, 6), title, fill=(20, 20, 20), font=_font(15))
    for i, entry in enumerate(entries):
        row, column = divmod(i, columns)
        sheet.paste(
            _tile(entry, entry is reference),
            (gap + column * (TILE_WIDTH + gap), header + gap + row * (tile_height + gap)),
        )
    return sheet
