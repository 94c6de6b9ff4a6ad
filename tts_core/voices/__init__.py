"""Voices that are not inside a model: voice files (`files`) and cloned voices (`clip`, `library`).

`files`: SpeechT5 x-vectors and Bark presets, read at warm load. `clip`: a reference
recording made ready for cloning. `library`: named cloned voices, kept on disk with each
model's conditioning, loaded warm at start-up.
"""

from .files import (ASSETS_VOICES, BARK_PROMPTS, NPY_MAGIC, XVECTOR_HOWTO, load_bark_presets,
                    load_xvectors, read_xvector, voices_folder)

__all__ = ["ASSETS_VOICES", "BARK_PROMPTS", "NPY_MAGIC", "XVECTOR_HOWTO", "load_bark_presets",
           "load_xvectors", "read_xvector", "voices_folder"]
