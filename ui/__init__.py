"""Gradio front end: one module per tab; only wiring, no model logic."""

from ui.app import build_app

__all__ = ["build_app"]
