"""Talk: make a portrait speak an audio clip, with head, eye and expression motion (SadTalker-compatible).

``TalkOptions``, ``TalkResult`` and ``talk`` are loaded on first use (PEP 562), so importing a light
submodule of this package does not import torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["TalkOptions", "TalkResult", "talk"]

if TYPE_CHECKING:
    from portrait_studio.talk.service import TalkOptions, TalkResult, talk


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from portrait_studio.talk import service

    return getattr(service, name)
