"""Text cleaning, spelling-out and chunking, as tables of exact expected strings."""

import pytest

from tts_core.text import chunk, clean, expand, foreign_letters, has_speakable, split_sentences


@pytest.mark.parametrize("raw, cleaned", [
    ("  Hello   there \n\n friend ", "Hello there friend"),
    ("zero\u200bwidth\u200djoiner\ufeff", "zerowidthjoiner"),
    ("bell\x07 and\x00 null", "bell and null"),
    ("tab\tand\r\nnewline", "tab and newline"),
    ("e\u0301", "\u00e9"),  # NFC: e + combining acute -> é
    ("lone \ud800 surrogate", "lone surrogate"),
    ("right\u200fto\u202eleft", "righttoleft"),
    ("", ""),
])
def test_clean(raw, cleaned):
    assert clean(raw) == cleaned


@pytest.mark.parametrize("text, speakable", [
    ("Hello", True), ("42", True), ("?!...", False), ("— – -", False), ("日本", True), ("", False),
])
def test_has_speakable(text, speakable):
    assert has_speakable(text) is speakable


@pytest.mark.parametrize("raw, spoken", [
    ("at 3:30 PM on May 5th", "at three thirty p m on May fifth"),
    ("Meet at 7:05 a.m. sharp.", "Meet at seven oh five a m sharp."),
    ("It is 12:00.", "It is twelve o'clock."),
    ("Trains leave at 15:45", "Trains leave at fifteen forty five"),
    ("It costs $5.20.", "It costs five dollars and twenty cents."),
    ("Only $1 or £3.", "Only one dollar or three pounds."),
    ("A €2.01 fee", "A two euros and one cent fee"),
    ("In 1999 we met.", "In nineteen ninety nine we met."),
    ("In 2024 we met.", "In twenty twenty four we met."),
    ("We have 2000 users", "We have two thousand users"),
    ("1,500 people", "one thousand five hundred people"),
    ("pi is 3.14", "pi is three point one four"),
    ("It was -5 outside", "It was minus five outside"),
    ("50% off", "fifty percent off"),
    ("the 21st and 2nd and 3rd", "the twenty first and second and third"),
    ("On 2024-05-05 we left", "On May fifth twenty twenty four we left"),
    ("June 1 is soon", "June first is soon"),
    ("Dr. Smith and Mr. Jones", "doctor Smith and mister Jones"),
    ("No. 10 please", "number ten please"),
    ("No, I said no.", "No, I said no."),
    ("apples, pears, etc.", "apples, pears, et cetera"),
    ("R&D", "R and D"),
    ("1234567890123456789", "one two three four five six seven eight nine zero "
                            "one two three four five six seven eight nine"),
    ("nothing to expand", "nothing to expand"),
])
def test_expand(raw, spoken):
    assert expand(raw) == spoken


def test_expand_leaves_no_digits_in_very_long_numbers():
    spoken = expand("7" * 3000)
    assert not any(ch.isdigit() for ch in spoken)
    assert spoken.count("seven") == 3000


@pytest.mark.parametrize("text, sentences", [
    ("Hello there. How are you?", ["Hello there.", "How are you?"]),
    ("Dr. Smith arrived! J. R. R. Tolkien wrote it.", ["Dr. Smith arrived!", "J. R. R. Tolkien wrote it."]),
    ('He said "Stop." Then left', ['He said "Stop."', "Then left"]),
    ("Wait... what?! Fine", ["Wait...", "what?!", "Fine"]),
    ("Pi is 3.14 exactly.", ["Pi is 3.14 exactly."]),
    ("Request 0. Request 1.", ["Request 0.", "Request 1."]),
    ("no end punctuation", ["no end punctuation"]),
])
def test_split_sentences(text, sentences):
    assert split_sentences(text) == sentences


@pytest.mark.parametrize("text, limit, chunks", [
    # Every chunk is one whole sentence, however short: a boundary is always a sentence end.
    ("One. Two. Three.", 50, ["One.", "Two.", "Three."]),
    ("Hello there. " * 3, 300, ["Hello there.", "Hello there.", "Hello there."]),
    ("Dr. Smith arrived. J. R. R. Tolkien wrote it.", 300,
     ["Dr. Smith arrived.", "J. R. R. Tolkien wrote it."]),
    ("Really?! Yes… “Quite.” Then go.", 300, ["Really?!", "Yes…", "“Quite.”", "Then go."]),
    # A sentence longer than the limit is cut at clauses, packed as long as they fit...
    ("First part, second part, third part.", 20, ["First part,", "second part,", "third part."]),
    ("First part, second part, third part.", 30, ["First part, second part,", "third part."]),
    # ...and at words only when one clause alone is too long.
    ("alpha beta gamma delta", 11, ["alpha beta", "gamma delta"]),
    ("abcdefghij", 4, ["abcd", "efgh", "ij"]),
])
def test_chunk(text, limit, chunks):
    assert chunk(clean(text), limit) == chunks


def test_no_short_first_chunk():
    """The first sentence is never cut to start audio sooner (streams decode inside it)."""
    first = "The committee reviewed the proposal for nearly three hours before anyone spoke up."
    text = clean(first + " " + " ".join(f"Sentence {i} goes on, with a pause in it." for i in range(40)))
    chunks = chunk(text, 300)
    assert chunks[0] == first
    assert all(c.endswith(".") for c in chunks) and " ".join(chunks) == text


def test_chunking_never_drops_text():
    text = clean(" ".join(
        f"Sentence number {i} has a clause, then another clause; and a dash — then more words."
        for i in range(80)))
    chunks = chunk(text, 120)
    assert " ".join(chunks) == text
    assert all(0 < len(c) <= 120 for c in chunks)


def test_a_word_longer_than_a_chunk_is_cut_not_dropped():
    text = "Start " + "x" * 700 + " end."
    chunks = chunk(text, 120)
    assert "".join(chunks).replace(" ", "") == text.replace(" ", "")
    assert all(0 < len(c) <= 120 for c in chunks)


@pytest.mark.parametrize("text, language, foreign", [
    ("Hello world", "en", ""), ("你好，世界", "en", "你好世界"), ("Hello 你好 Привет", "en", "你好Привет"),
    ("Grüße, Œuvre", "de", ""), ("你好", "zh", ""), ("你好", None, ""),
])
def test_letters_outside_a_latin_language_are_named(text, language, foreign):
    assert foreign_letters(text, language) == foreign
