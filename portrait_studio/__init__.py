"""Portrait Studio backend: likeness training, stylized portraits, animation and talking heads.

Nothing in this package imports gradio; the UI lives in ``ui/`` and calls the services here.
"""

__version__ = "0.1.0"
