"""Deterministic inputs shared by the golden fixtures and the tests (a formula, so no input files)."""

from __future__ import annotations

import math
from pathlib import Path

import torch

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "talk"


def pattern(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    n = math.prod(shape)
    x = torch.arange(n, dtype=torch.float64)
    return (torch.sin(x * (0.013 * seed + 0.1)) * torch.cos(x * 0.0007 * seed + seed)).float().reshape(shape)
