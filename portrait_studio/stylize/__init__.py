"""Stylize: portraits from prompts and presets, with or without a likeness."""
