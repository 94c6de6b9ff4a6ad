"""Saved cloned voices: each clip, transcript and per-model conditioning on disk, loaded warm at start-up.

A voice lives in `TTS_VOICES_DIR/<name>/`: `clip.wav` (the prepared clip), `transcript.txt`,
`meta.json` (written last) and `models/<model>.npz`, each loaded model's conditioning (what
`Engine.encode_voice` made from the clip). A voice is written whole into a temporary folder
and renamed into place, so a crash mid-add leaves no half voice (leftovers are removed at
the next start). The conditioning is computed once per voice and model: when the voice is
added (each model's encode takes a turn at the device gate, like any inference) or, for a
model loaded later, once at start-up; after that a restart only reads it.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import threading
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator
from urllib.parse import quote

import numpy as np
import soundfile as sf

from ..engines import CloneLimits, Engine, SynthesisParams, speak
from ..errors import (InputError, ModelLoadError, SynthesisError, TTSError, UnknownVoiceError,
                      VoiceClipError, VoiceExistsError)
from ..pipeline import Pipeline
from ..registry import TRANSIENT_MARK
from .clip import PreparedClip, Transcriber, prepare

logger = logging.getLogger(__name__)

NAME_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
CLIP_FILE, TRANSCRIPT_FILE, META_FILE, MODELS_DIR = "clip.wav", "transcript.txt", "meta.json", "models"
TEMP_PREFIX, TRASH_PREFIX = ".tmp-", ".trash-"  # never a voice's name (names have no dots)
SOURCE_KEY = "tts_studio_model"  # in each .npz: the spec it was made with (another spec: remade)


def check_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise InputError(f"A voice's name is 1 to 64 letters, digits, '-' or '_'; {name!r} is not.",
                         param="name")
    return name


class VoiceLibrary:
    """The saved voices of one pipeline, on disk and in every loaded cloning model."""

    def __init__(self, pipeline: Pipeline, transcriber: Transcriber | None = None):
        self.pipeline = pipeline
        self.folder = Path(pipeline.settings.voices_dir)
        self.transcriber = transcriber
        self.saved: dict[str, dict] = {}  # name -> its meta.json
        self._lock = threading.RLock()  # one add or delete at a time
        self._opened = False  # the folder has been read
        self._whisper_tried = False

    def cloning_engines(self) -> list[Engine]:
        """The loaded models that speak cloned voices, in TTS_MODELS order."""
        registry = self.pipeline.registry
        engines = registry.engines
        return [engines[w.name] for w in registry.warm
                if w.card.capabilities.clones and w.name in engines]

    # --- start-up -----------------------------------------------------------------------

    def start(self) -> None:
        """Every saved voice into every cloning model (conditioning read, or made once if
        missing), then one cloned voice spoken by each model (its warm-up)."""
        engines = self.cloning_engines()
        if not engines:
            return
        with self._lock:
            self._open()
            for engine in engines:
                self._give_saved(engine)
            self._warm_up(engines)
        logger.info("Voice library %s: %d voice(s) for %s", self.folder, len(self.saved),
                    ", ".join(e.name for e in engines))

    def model_added(self, engine: Engine) -> None:
        """A model added while serving (warm, in the registry) gets every saved voice, if it
        clones: conditioning read, or made once (each encode a turn at the gate)."""
        if not engine.card().capabilities.clones:
            return
        with self._lock:
            try:
                self.ensure_transcriber()
            except ModelLoadError as e:
                logger.warning("%s; saved voices that need cutting are skipped", e)
            self._open()
            self._give_saved(engine)

    def ensure_transcriber(self) -> None:
        """Whisper loaded once, when the first cloning model is (never per request)."""
        if not self._whisper_tried:
            self._whisper_tried = True
            self.transcriber = self.transcriber or load_transcriber(
                self.pipeline.settings.whisper_model)

    def _open(self) -> None:
        """The folder read once: leftovers of unfinished adds and deletes removed, each saved
        voice's meta.json read."""
        if self._opened:
            return
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ModelLoadError(f"TTS_VOICES_DIR {str(self.folder)!r} cannot be made: {e}") from e
        for leftover in self.folder.glob(".*-*"):
            if leftover.name.startswith((TEMP_PREFIX, TRASH_PREFIX)):
                logger.warning("Removing %s, left by an add or delete that did not finish", leftover)
                shutil.rmtree(leftover, ignore_errors=True)
        for path in sorted(p for p in self.folder.iterdir() if (p / META_FILE).is_file()):
            try:
                self.saved[path.name] = json.loads((path / META_FILE).read_text())
            except (OSError, ValueError) as e:
                logger.warning("Skipping saved voice %s: its %s is unreadable (%s)", path, META_FILE, e)
        self._opened = True

    def _give_saved(self, engine: Engine) -> None:
        for name in sorted(self.saved):
            conditioning = self._saved_conditioning(self.folder / name, engine)
            if conditioning is not None and name not in engine.voices:
                engine.add_voice(name, conditioning)
        self.pipeline.registry.refresh_card(engine.name)

    def _saved_conditioning(self, path: Path, engine: Engine) -> dict[str, np.ndarray] | None:
        """`engine`'s conditioning for the voice in `path`: read, or made once and kept."""
        npz = path / MODELS_DIR / f"{quote(engine.name, safe='')}.npz"
        if npz.is_file():
            try:
                with np.load(npz, allow_pickle=False) as data:
                    saved = {key: data[key] for key in data.files}
                if str(saved.pop(SOURCE_KEY, "")) == engine.spec.raw:
                    return saved
                logger.info("%s was made with another %s; making it again", npz, engine.name)
            except (OSError, ValueError) as e:
                logger.warning("%s is unreadable (%s); making it again", npz, e)
        meta = self.saved[path.name]
        try:
            clip = prepare((path / CLIP_FILE).read_bytes(), **self._wants([engine]),
                           transcript=meta.get("transcript"), transcriber=self.transcriber)
            conditioning = self._encode(engine, clip)
        except (OSError, TTSError) as e:
            logger.warning("Voice %s is not available for %s: %s", path.name, engine.name, e)
            return None
        _write_npz(npz, conditioning, engine.spec.raw)
        logger.info("Voice %s: conditioning for %s made once and kept", path.name, engine.name)
        return conditioning

    def _warm_up(self, engines: list[Engine]) -> None:
        text = self.pipeline.settings.warmup_text
        for engine in engines:
            voice = next((v for v in self.saved if v in engine.voices), None)
            if voice is None:
                continue
            try:
                speak(engine, text, SynthesisParams(voice=voice), what="warm-up text")
            except Exception as e:
                raise ModelLoadError(f"Model {engine.name!r} failed its warm-up in the saved voice "
                                     f"{voice!r}: {e}. Delete {self.folder / voice} to start "
                                     "without it.") from e

    # --- what callers use ---------------------------------------------------------------

    def entries(self) -> list[dict]:
        """Each saved voice as the API shows it, with the loaded models that speak it."""
        return [self.entry(name) for name in sorted(self.saved)]

    def entry(self, name: str) -> dict:
        meta = self.saved[name]
        models = [e.name for e in self.cloning_engines() if name in e.voices]
        return {"id": name, "object": "voice", "models": models, **meta}

    def add(self, name: str, data: bytes, transcript: str | None = None) -> dict:
        """Prepare the clip, encode it for every cloning model (gate turns), save it whole,
        then speak it: its entry. InputError (and subclasses) name what is wrong."""
        check_name(name)
        engines = self._engines_or_refuse()
        with self._lock:
            self._check_free(name, engines)
            clip = prepare(data, **self._wants(engines), transcript=transcript,
                           transcriber=self.transcriber)
            conditioning = {engine.name: self._encode(engine, clip) for engine in engines}
            meta = {"created": int(time.time()), "seconds": round(clip.seconds, 3),
                    "original_seconds": clip.original_s, "cut": clip.cut,
                    "transcript": clip.transcript, "transcribed": clip.transcribed}
            self._write(name, clip, meta, {e: conditioning[e.name] for e in engines})
            added = []
            try:
                for engine in engines:
                    engine.add_voice(name, conditioning[engine.name])
                    added.append(engine)
            except Exception:
                for engine in added:
                    engine.remove_voice(name)
                shutil.rmtree(self.folder / name, ignore_errors=True)
                raise
            finally:
                for engine in engines:
                    self.pipeline.registry.refresh_card(engine.name)
            self.saved[name] = meta
            logger.info("Voice %s added (%.1f s%s) for %s", name, clip.seconds,
                        ", cut" if clip.cut else "", ", ".join(e.name for e in engines))
            return self.entry(name)

    def delete(self, name: str) -> None:
        """Forget `name` in every model, then remove its folder (renamed away first)."""
        with self._lock:
            if name not in self.saved:
                raise UnknownVoiceError(f"No saved voice is called {name!r}. Saved voices: "
                                        f"{', '.join(sorted(self.saved)) or 'none'}.", param="name")
            for engine in self.cloning_engines():
                if name in engine.voices:
                    engine.remove_voice(name)
                    self.pipeline.registry.refresh_card(engine.name)
            trash = self.folder / f"{TRASH_PREFIX}{name}-{uuid.uuid4().hex[:8]}"
            os.replace(self.folder / name, trash)
            del self.saved[name]
            shutil.rmtree(trash, ignore_errors=True)
            logger.info("Voice %s deleted", name)

    def prepare_clip(self, data: bytes, transcript: str | None = None) -> PreparedClip:
        """The clip as `add` would keep it for every loaded cloning model (edges trimmed, cut at
        a pause with its transcript cut to match, Whisper's transcript where one is needed),
        with nothing encoded or saved: what a person checks before saving. VoiceClipError
        (and InputError when no model clones) say what is wrong."""
        engines = self._engines_or_refuse()
        return prepare(data, **self._wants(engines), transcript=transcript,
                       transcriber=self.transcriber)

    def clip_wants(self) -> dict:
        """What a clip must be for every loaded cloning model: min_s, max_s, needs_transcript."""
        return self._wants(self._engines_or_refuse())

    def clip_file(self, name: str) -> Path:
        """The saved voice's prepared clip (WAV), to play it back."""
        if name not in self.saved:
            raise UnknownVoiceError(f"No saved voice is called {name!r}. Saved voices: "
                                    f"{', '.join(sorted(self.saved)) or 'none'}.", param="name")
        return self.folder / name / CLIP_FILE

    def add_transient(self, data: bytes, transcript: str | None) -> str:
        """A one-off voice from a clip, for every loaded cloning model (each encode a gate
        turn), kept in memory only: its name, which no saved voice can have and no card
        lists. Whoever adds it removes it (`remove_transient`)."""
        engines = self._engines_or_refuse()
        clip = prepare(data, **self._wants(engines), transcript=transcript,
                       transcriber=self.transcriber)
        conditioning = {engine.name: self._encode(engine, clip) for engine in engines}
        name = transient_name()
        for engine in engines:
            engine.add_voice(name, conditioning[engine.name])
        logger.info("One-off voice %s (%.1f s) for %s", name, clip.seconds,
                    ", ".join(e.name for e in engines))
        return name

    def remove_transient(self, name: str) -> None:
        """Forget a one-off voice in every model that has it (nothing of it is on disk)."""
        for engine in self.cloning_engines():
            if name in engine.voices:
                engine.remove_voice(name)

    @contextmanager
    def temporary(self, model: str | None, data: bytes, transcript: str | None) -> Iterator[str]:
        """A one-off voice from a clip, not saved: spoken by `model` as the name yielded, for
        as long as the block runs (a RunPod job's reference_audio)."""
        engine = self.pipeline.registry.get(model)
        if not self.pipeline.registry.card(engine.name).capabilities.clones:
            cloners = ", ".join(e.name for e in self.cloning_engines()) or "none is loaded"
            raise InputError(f"Model {engine.name!r} does not clone voices; a reference clip "
                             f"needs a cloning model ({cloners}).", param="model")
        clip = prepare(data, **self._wants([engine]), transcript=transcript,
                       transcriber=self.transcriber)
        name = transient_name()
        engine.add_voice(name, self._encode(engine, clip))
        try:
            yield name
        finally:
            engine.remove_voice(name)

    # --- inside -------------------------------------------------------------------------

    def _engines_or_refuse(self) -> list[Engine]:
        engines = self.cloning_engines()
        if not engines:
            raise InputError("No loaded model clones voices: load a csm:, dia: or pocket: model "
                             "(TTS_MODELS) to add one.", param="model")
        return engines

    def _check_free(self, name: str, engines: list[Engine]) -> None:
        if name in self.saved or (self.folder / name).exists():
            raise VoiceExistsError(f"A voice called {name!r} is already saved; delete it first "
                                   "or choose another name.")
        taken = [e.name for e in engines if name in e.voices]
        if taken:
            raise VoiceExistsError(f"Model {taken[0]!r} already has a voice called {name!r}; "
                                   "choose another name.")

    @staticmethod
    def _wants(engines: list[Engine]) -> dict:
        """What a clip must be for all of `engines`: the longest minimum, the shortest maximum."""
        limits: list[CloneLimits] = [e.clone_limits() for e in engines]
        return {"min_s": max(lim.min_s for lim in limits), "max_s": min(lim.max_s for lim in limits),
                "needs_transcript": any(lim.needs_transcript for lim in limits)}

    def _encode(self, engine: Engine, clip: PreparedClip) -> dict[str, np.ndarray]:
        """`engine.encode_voice` on the clip at its rate, in a turn at the device gate."""
        audio = clip.for_model(engine.clone_limits().sample_rate)
        gate = self.pipeline.gate
        try:
            with gate.admit():
                conditioning, _, _ = gate.run(lambda: engine.encode_voice(audio, clip.transcript))
        except TTSError:
            raise
        except Exception as e:
            raise SynthesisError(f"Model {engine.name!r} could not make a voice from the clip: "
                                 f"{e}") from e
        if not isinstance(conditioning, dict) or not all(
                isinstance(v, np.ndarray) for v in conditioning.values()):
            raise SynthesisError(f"Model {engine.name!r}'s encode_voice returned "
                                 f"{type(conditioning).__name__}, not a dict of arrays")
        return conditioning

    def _write(self, name: str, clip: PreparedClip, meta: dict,
               conditioning: dict[Engine, dict[str, np.ndarray]]) -> None:
        """The voice's folder, written whole under a temporary name, then renamed into place."""
        self.folder.mkdir(parents=True, exist_ok=True)
        temp = self.folder / f"{TEMP_PREFIX}{name}-{uuid.uuid4().hex[:8]}"
        try:
            (temp / MODELS_DIR).mkdir(parents=True)
            sf.write(temp / CLIP_FILE, clip.audio, clip.sample_rate, subtype="FLOAT")
            (temp / TRANSCRIPT_FILE).write_text(clip.transcript or "")
            for engine, arrays in conditioning.items():
                _write_npz(temp / MODELS_DIR / f"{quote(engine.name, safe='')}.npz", arrays,
                           engine.spec.raw)
            (temp / META_FILE).write_text(json.dumps(meta, indent=1))  # last: now it is a voice
            os.replace(temp, self.folder / name)
        except BaseException:
            shutil.rmtree(temp, ignore_errors=True)
            raise


def transient_name() -> str:
    """A one-off voice's name: unguessable, never a saved voice's (check_name), never in a card."""
    return f"clip{TRANSIENT_MARK}{uuid.uuid4().hex[:12]}"


def _write_npz(path: Path, arrays: dict[str, np.ndarray], source: str) -> None:
    """`arrays` (and the spec they were made with) as `path`, replaced whole."""
    temp = path.with_name(f"{TEMP_PREFIX}{uuid.uuid4().hex[:8]}.npz")
    try:
        with open(temp, "wb") as f:
            np.savez(f, **arrays, **{SOURCE_KEY: np.array(source)})
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


_LIBRARY_LOCK = threading.Lock()


def library_for(pipeline: Pipeline) -> VoiceLibrary:
    """The one voice library of `pipeline`, started on first use (bootstrap uses it at start-up,
    after the warm load): Whisper loaded if a cloning model is, the saved voices added."""
    with _LIBRARY_LOCK:
        library = getattr(pipeline, "_voice_library", None)
        if library is None:
            library = VoiceLibrary(pipeline)
            if library.cloning_engines():
                library.ensure_transcriber()
            library.start()
            pipeline._voice_library = library
        return library


def load_transcriber(model: str | None) -> Transcriber | None:
    """Whisper for clips sent without a transcript. A named model (TTS_WHISPER_MODEL) must
    load; the packaged default may be missing (then clips need their transcript)."""
    from .transcribe import WhisperTranscriber

    try:
        return WhisperTranscriber(model)
    except ModelLoadError:
        if model:
            raise
        logger.warning("No Whisper model: clips for CSM and Dia need their transcript",
                       exc_info=True)
        return None


__all__ = ["VoiceLibrary", "VoiceClipError", "check_name", "library_for"]
