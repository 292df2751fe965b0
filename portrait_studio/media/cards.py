"""Labelled picture cards: what the UI shows where there is no real picture to show (a LoRA imported without a
preview, a style preset whose preview cannot be made yet). A card says in words what it stands for, so it is
never mistaken for a result."""

from __future__ import annotations

import textwrap

from PIL import Image, ImageDraw, ImageFont

CARD_SIZE = (256, 256)
_BACKGROUND = (238, 240, 244)
_BORDER = (170, 176, 190)
_TITLE = (30, 34, 44)
_TEXT = (80, 86, 100)


def label_card(title: str, lines: list[str] | tuple[str, ...] = (), size: tuple[int, int] = CARD_SIZE) -> Image.Image:
    """A plain card with ``title`` in large type and ``lines`` under it, wrapped to fit."""
    width, height = size
    card = Image.new("RGB", size, _BACKGROUND)
    draw = ImageDraw.Draw(card)
    draw.rectangle((3, 3, width - 4, height - 4), outline=_BORDER, width=2)
    title_font = _font(max(14, width // 12))
    text_font = _font(max(11, width // 19))
    y = 14
    for part in textwrap.wrap(" ".join(str(title).split()), width=max(8, width // (title_font.size // 2 + 2)))[:3]:
        draw.text((14, y), part, fill=_TITLE, font=title_font)
        y += title_font.size + 4
    y += 6
    chars = max(10, width // (text_font.size // 2 + 1))
    for line in lines:
        for part in textwrap.wrap(" ".join(str(line).split()), width=chars) or [""]:
            if y + text_font.size > height - 10:
                return card
            draw.text((14, y), part, fill=_TEXT, font=text_font)
            y += text_font.size + 3
        y += 4
    return card


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)  # Pillow's built-in scalable font (no system fonts needed)
    except TypeError:  # Pillow < 10.1: one bitmap size only
        return ImageFont.load_default()
