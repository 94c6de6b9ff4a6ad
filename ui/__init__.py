"""The studio's Gradio page: one module per panel, assembled by `ui.studio.build_demo`."""

from ui.studio import build_demo

__all__ = ["build_demo"]
