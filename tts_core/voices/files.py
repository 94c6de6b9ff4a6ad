"""Voices that live in files: SpeechT5 x-vectors (.npy) and Bark presets (.npz).

A folder of them is read once, at warm load; a request may also bring its own x-vector.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from ..errors import InputError, ModelLoadError

# Where voices are looked for when a spec names no `voices=` folder: assets/voices/<family>/.
ASSETS_VOICES = Path(__file__).resolve().parents[2] / "assets" / "voices"
BARK_PROMPTS = ("semantic_prompt", "coarse_prompt", "fine_prompt")
XVECTOR_HOWTO = (
    "A SpeechT5 voice is a speaker embedding: a .npy file of 512 float32 numbers (an x-vector, "
    "as made by speechbrain/spkrec-xvect-voxceleb from a few seconds of someone speaking, or one "
    "row of the Matthijs/cmu-arctic-xvectors dataset, e.g. np.save('slt.npy', row['xvector']))."
)


def voices_folder(option: str | None, family: str) -> Path:
    return Path(option).expanduser() if option else ASSETS_VOICES / family


def read_xvector(data: np.ndarray | bytes | str | Path, dim: int,
                 what: str = "The speaker embedding") -> np.ndarray:
    """An array, or a .npy file (path or bytes), of `dim` finite numbers -> float32 (dim,)."""
    if isinstance(data, np.ndarray):
        raw = data
    elif not _is_npy(data):
        raise InputError(f"{what} is not a readable .npy file: it does not start with the .npy "
                         f"header (was another kind of file renamed?). {XVECTOR_HOWTO}", param="speaker_embedding")
    else:
        try:
            raw = np.load(io.BytesIO(data) if isinstance(data, bytes) else data, allow_pickle=False)
        except (OSError, ValueError, EOFError) as e:
            # numpy's own words here advise allow_pickle=True: never the advice for an upload.
            reason = "it holds Python objects, not numbers" if "pickle" in str(e) else str(e)
            raise InputError(f"{what} is not a readable .npy array ({reason}). {XVECTOR_HOWTO}",
                             param="speaker_embedding") from e
    if not isinstance(raw, np.ndarray) or raw.dtype.kind not in "fiu" or raw.size != dim:
        shape = getattr(raw, "shape", "?")
        raise InputError(f"{what} holds an array of shape {shape}; this model needs {dim} numbers. "
                         f"{XVECTOR_HOWTO}", param="speaker_embedding")
    vector = raw.astype(np.float32).reshape(dim)
    if not np.isfinite(vector).all():
        raise InputError(f"{what} contains NaN or infinite values.", param="speaker_embedding")
    return vector


NPY_MAGIC = b"\x93NUMPY"  # every .npy file starts with these six bytes


def _is_npy(data: bytes | str | Path) -> bool:
    if isinstance(data, bytes):
        return data.startswith(NPY_MAGIC)
    try:
        with open(data, "rb") as f:
            return f.read(len(NPY_MAGIC)) == NPY_MAGIC
    except OSError:
        return True  # let np.load say what is wrong with the path


def load_xvectors(folder: Path, dim: int) -> dict[str, np.ndarray]:
    """Every <name>.npy in `folder` as voice <name>; a malformed one stops the load."""
    voices = {}
    for path in sorted(folder.glob("*.npy")) if folder.is_dir() else []:
        try:
            voices[path.stem] = read_xvector(path, dim, what=f"Voice file {path}")
        except InputError as e:
            raise ModelLoadError(str(e)) from e
    return voices


def load_bark_presets(folder: Path) -> dict[str, dict[str, np.ndarray]]:
    """Every <name>.npz in `folder` (with Bark's three prompt arrays) as voice <name>."""
    presets = {}
    for path in sorted(folder.glob("*.npz")) if folder.is_dir() else []:
        with np.load(path, allow_pickle=False) as npz:
            missing = [key for key in BARK_PROMPTS if key not in npz]
            if missing:
                raise ModelLoadError(f"Bark preset {path} lacks {', '.join(missing)}; a preset is "
                                     f"an .npz with {', '.join(BARK_PROMPTS)}.")
            prompt = {key: npz[key] for key in BARK_PROMPTS}
        shapes = {key: prompt[key].ndim for key in BARK_PROMPTS}
        if shapes != {"semantic_prompt": 1, "coarse_prompt": 2, "fine_prompt": 2} or any(
                prompt[key].dtype.kind not in "iu" for key in BARK_PROMPTS):
            raise ModelLoadError(f"Bark preset {path}: semantic_prompt must be a 1-D and "
                                 "coarse_prompt and fine_prompt 2-D arrays of token ids (integers); "
                                 f"its dimensions are {shapes}.")
        presets[path.stem] = prompt
    return presets
