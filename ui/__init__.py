"""The studio's Gradio page: one module per panel, assembled by `ui.studio.build_demo`."""
