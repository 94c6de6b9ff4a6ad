"""Compare English text preparations for the joe voice: exact strings and what Whisper hears.

    python scripts/compare_text_prep.py            # espeak alone, inflect, this app's expand()
    python scripts/compare_text_prep.py --before b9ddaed   # and expand() as it was at a commit
    /path/to/venv-with-nemo/bin/python scripts/compare_text_prep.py   # and nemo-text-processing

For each preparation: how many cases of the table in tests/test_text.py (READ_LIKE_A_PERSON)
it reads exactly as written there, and loosely (case, punctuation, hyphens and "and" ignored);
then the Whisper tiny.en WER of the voice (noise off, called through piper) on the sentences of
tests/data/intelligibility.tsv, plain and number-heavy, with the text prepared by it.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from test_intelligibility import Listener, load_sentences, piper_direct  # noqa: E402
from test_text import READ_LIKE_A_PERSON  # noqa: E402

from tts_core.text import expand  # noqa: E402


def inflect_words():
    """inflect's number_to_words on every number, as a library user would call it."""
    import inflect

    engine = inflect.engine()

    def say(m: re.Match) -> str:
        words = engine.number_to_words(m.group(0).replace(",", ""), andword="")
        return words.replace("-", " ").replace(",", "")

    return lambda text: re.sub(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?(?:st|nd|rd|th)?", say, text)


def nemo():
    from nemo_text_processing.text_normalization.normalize import Normalizer

    started = time.perf_counter()
    normalizer = Normalizer(input_case="cased", lang="en",
                            cache_dir=str(Path.home() / ".cache" / "nemo-tn"))
    print(f"nemo-text-processing: grammars ready in {time.perf_counter() - started:.1f} s")
    return lambda text: normalizer.normalize(text, punct_post_process=True)


def expand_at(rev: str):
    """expand() as tts_core/text.py had it at git revision `rev`."""
    source = subprocess.check_output(["git", "show", f"{rev}:tts_core/text.py"], cwd=ROOT, text=True)
    module = types.ModuleType("text_at_" + rev)
    exec(compile(source, f"{rev}:tts_core/text.py", "exec"), module.__dict__)
    return module.expand


def loose(text: str) -> str:
    text = re.sub(r"[^\w' ]+", " ", text.lower())
    return " ".join(w for w in text.split() if w != "and")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", metavar="REV", help="also measure expand() at this git revision")
    args = parser.parse_args()
    preparations = {"espeak alone": lambda text: text, "inflect": inflect_words()}
    try:
        preparations["nemo-text-processing"] = nemo()
    except ImportError as e:
        print(f"nemo-text-processing: not installed here ({e}); skipped")
    if args.before:
        preparations[f"expand() at {args.before}"] = expand_at(args.before)
    preparations["this app's expand()"] = expand

    sentences = load_sentences()
    listener = Listener()
    rows = []
    for name, prepare in preparations.items():
        exact = sum(prepare(raw) == spoken for raw, spoken in READ_LIKE_A_PERSON)
        near = sum(loose(prepare(raw)) == loose(spoken) for raw, spoken in READ_LIKE_A_PERSON)
        started = time.perf_counter()
        prepared = [prepare(s.text) for s in sentences]
        ms = (time.perf_counter() - started) * 1000 / len(sentences)
        audios = piper_direct(prepared)
        wer = {}
        for plain in (True, False):
            picked = [(s.reference, a) for s, a in zip(sentences, audios) if s.plain == plain]
            wer[plain], _ = listener.wer(*zip(*picked))
        rows.append((name, exact, near, wer[True], wer[False], ms))
        print(f"{name}: done", flush=True)

    n = len(READ_LIKE_A_PERSON)
    print(f"\n| preparation | exact ({n} cases) | loose | WER plain | WER number-heavy | ms/sentence |")
    print("|---|---|---|---|---|---|")
    for name, exact, near, plain, numbers, ms in rows:
        print(f"| {name} | {exact} | {near} | {plain:.3f} | {numbers:.3f} | {ms:.2f} |")


if __name__ == "__main__":
    main()
