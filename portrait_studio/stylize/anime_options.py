"""The choices of Photo to anime, kept apart from the model code so the UI lists them without importing torch."""

from portrait_studio.models.roles import ANIMEGAN_STYLES

STYLES: tuple[str, ...] = tuple(ANIMEGAN_STYLES)
DEFAULT_STYLE = "face_paint_512_v2"
MODES = ("face", "full")
