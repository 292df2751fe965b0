"""Import shims for face libraries written against older torchvision. The ONE place that patches imports.

basicsr (pulled in by gfpgan) imports ``torchvision.transforms.functional_tensor``, a module torchvision
removed in 0.17; its only use there is ``rgb_to_grayscale``, which lives on in
``torchvision.transforms.functional``. Registering an alias module before the import makes it work.
"""

from __future__ import annotations

import sys
import types

_ALIAS = "torchvision.transforms.functional_tensor"


def install_torchvision_alias() -> None:
    """Register the removed module name (idempotent; a real module, if present, is left alone)."""
    if _ALIAS in sys.modules:
        return
    try:
        import torchvision.transforms.functional_tensor  # noqa: F401 - old torchvision still has it
        return
    except ImportError:
        pass
    from torchvision.transforms import functional

    alias = types.ModuleType(_ALIAS)
    alias.rgb_to_grayscale = functional.rgb_to_grayscale  # type: ignore[attr-defined]
    sys.modules[_ALIAS] = alias


def import_gfpgan_clean_arch() -> type:
    """``GFPGANv1Clean`` with the shim in place."""
    install_torchvision_alias()
    from gfpgan.archs.gfpganv1_clean_arch import GFPGANv1Clean

    return GFPGANv1Clean
