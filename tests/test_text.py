"""Text cleaning, spelling-out and chunking, as tables of exact expected strings."""

import pytest

from tts_core.text import (chunk, clean, expand, foreign_letters, has_speakable, read_symbols,
                           split_sentences)


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
    ("at 3:30 PM on May 5th", "at three thirty PM on May fifth"),
    ("Meet at 7:05 a.m. sharp.", "Meet at seven oh five AM sharp."),
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
    # The full stop that ends a sentence stays after an abbreviation that can end one.
    ("apples, pears, etc.", "apples, pears, et cetera."),
    ("apples, pears, etc. Then more.", "apples, pears, et cetera. Then more."),
    ("R&D", "R and D"),
    ("1234567890123456789", "one two three four five six seven eight nine zero "
                            "one two three four five six seven eight nine"),
    ("nothing to expand", "nothing to expand"),
])
def test_expand(raw, spoken):
    assert expand(raw) == spoken


# Issue 11, "numbers and symbols read like a person": every item of its list, as a person reads it.
# The same table measured nemo-text-processing and inflect against these rules (docs/text-preparation.md).
READ_LIKE_A_PERSON = [
    # years, with the comma after them (a pause) kept
    ("In 1987, the company opened.", "In nineteen eighty seven, the company opened."),
    ("It was finished in 2010.", "It was finished in twenty ten."),
    ("It dates from 1066 and 1905.", "It dates from ten sixty six and nineteen oh five."),
    ("In 1900, it rained.", "In nineteen hundred, it rained."),
    ("houses built in the 1800s", "houses built in the eighteen hundreds"),
    # decades
    ("they met in the 1960s, at a dance", "they met in the nineteen sixties, at a dance"),
    ("songs from the '80s", "songs from the eighties"),
    ("in his 30s", "in his thirties"),
    # ranges
    ("open from 8 to 4", "open from eight to four"),
    ("makes 150-250 cookies", "makes one hundred and fifty to two hundred and fifty cookies"),
    ("read pages 4-9 now", "read pages four to nine now"),
    ("from 1990–1995", "from nineteen ninety to nineteen ninety five"),
    # phone numbers, digit by digit, a pause between groups
    ("Call 555-0134 now.", "Call five five five, zero one three four now."),
    ("Call (212) 555-7788.", "Call two one two, five five five, seven seven eight eight."),
    ("Call 1-800-555-0199.", "Call one, eight zero zero, five five five, zero one nine nine."),
    ("Call +44 020-555-0134.", "Call plus four four, zero two zero, five five five, zero one three four."),
    # units
    ("Add 250 g of flour", "Add two hundred and fifty grams of flour"),
    ("a 12 mm screw, 12 mm long", "a twelve millimeter screw, twelve millimeters long"),
    ("limit is 65 mph.", "limit is sixty five miles per hour."),
    ("it grew 40 ft, then 1 ft", "it grew forty feet, then one foot"),
    ("It was 72°F outside", "It was seventy two degrees Fahrenheit outside"),
    ("rose by 3.5%", "rose by three point five percent"),
    ("It was -5°C and 23 kg.", "It was minus five degrees Celsius and twenty three kilograms."),
    # Roman numerals after names and numbered nouns, not the pronoun I
    ("Queen Elizabeth II opened it.", "Queen Elizabeth the second opened it."),
    ("Pope John XXIII called it.", "Pope John the twenty third called it."),
    ("Part III of the book", "Part three of the book"),
    ("Henry VIII had six wives, and I know them.", "Henry the eighth had six wives, and I know them."),
    ("World War II and World War I", "World War two and World War one"),
    ("King Henry I died. Then I left.", "King Henry the first died. Then I left."),
    ("Washington DC has a CD shop", "Washington DC has a CD shop"),
    # fractions, decimals, negative numbers
    ("About 2/3 of them", "About two thirds of them"),
    ("needs 2 1/4 cups", "needs two and a quarter cups"),
    ("1/2 and 3/8 and 5/12", "one half and three eighths and five twelfths"),
    ("2½ cups, ¾ full", "two and a half cups, three quarters full"),
    ("open 24/7", "open twenty four seven"),
    ("ratio 355/113", "ratio three hundred and fifty five slash one hundred and thirteen"),
    ("The score was 7.25, then 0.75.", "The score was seven point two five, then zero point seven five."),
    ("It dropped to -12 degrees.", "It dropped to minus twelve degrees."),
    ("from 30 to -45", "from thirty to minus forty five"),
    # dates
    ("planned for 2031-11-02 on the coast", "planned for November second twenty thirty one on the coast"),
    ("born on March 3, 1994, in a town", "born on March third, nineteen ninety four, in a town"),
    ("ends on 12 December 2027.", "ends on the twelfth of December twenty twenty seven."),
    ("due 11/02/2031", "due November second twenty thirty one"),
    # times with a.m. and p.m., the sentence's full stop kept
    ("leaves at 7:45 a.m. and arrives at 1:15 p.m.", "leaves at seven forty five AM and arrives at one fifteen PM."),
    ("Doors open at 6 p.m. and close at 11:30 PM.", "Doors open at six PM and close at eleven thirty PM."),
    ("at 6pm. Then 9 am", "at six PM. Then nine AM"),
    # ordinals
    ("She finished 3rd and 21st overall", "She finished third and twenty first overall"),
    ("on the 42nd floor", "on the forty second floor"),
    # money with cents
    ("costs $12.50 each", "costs twelve dollars and fifty cents each"),
    ("paid $3.99 and £2.05", "paid three dollars and ninety nine cents and two pounds and five pence"),
    ("sold for $1.5 million", "sold for one point five million dollars"),
    ("between $10-$20", "between ten dollars to twenty dollars"),
    # street addresses
    ("lives at 10 Downing St. in London", "lives at ten Downing Street in London"),
    ("went to 1600 Pennsylvania Ave. Then home.", "went to sixteen hundred Pennsylvania Avenue. Then home."),
    ("St. Louis is far", "Saint Louis is far"),
    # version numbers
    ("upgrade to version 2.7 now", "upgrade to version two point seven now"),
    ("Python 3.11 is out", "Python three point eleven is out"),
    ("v1.2.3 is out", "version one point two point three is out"),
    # large numbers with separators, and glued digits
    ("has 1,250,000 residents", "has one million two hundred and fifty thousand residents"),
    ("holds 75,000 fans", "holds seventy five thousand fans"),
    ("the 5G net and MP3", "the five G net and MP three"),
    ("agent 007", "agent zero zero seven"),
]


@pytest.mark.parametrize("raw, spoken", READ_LIKE_A_PERSON)
def test_expand_reads_like_a_person(raw, spoken):
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


from hypothesis import given, settings as hsettings, strategies as st  # noqa: E402

# What people type around numbers: digits, separators, signs, currency, units, Roman letters.
_NUMBERISH = st.text(alphabet=st.sampled_from(list("0123456789 ,.-–/:'%$£€°+&@#()½¾IVXLCDMaAmMpPgkstndrhFC")),
                     max_size=60)


@hsettings(max_examples=400, deadline=None)
@given(_NUMBERISH)
def test_expand_never_fails_and_leaves_no_digit(text):
    """Whatever is typed, every digit is read out (MMS-TTS has none in its alphabet)."""
    spoken = expand(clean(text))
    assert not any(ch.isdigit() for ch in spoken), spoken


@pytest.mark.parametrize("text, language, foreign", [
    ("Hello world", "en", ""), ("你好，世界", "en", "你好世界"), ("Hello 你好 Привет", "en", "你好Привет"),
    ("Grüße, Œuvre", "de", ""), ("你好", "zh", ""), ("你好", None, ""),
])
def test_letters_outside_a_latin_language_are_named(text, language, foreign):
    assert foreign_letters(text, language) == foreign


# Issue 30: espeak reads a symbol by its Unicode name (300 emoji were a minute of speech). What
# each becomes, cleaned and then read (read_symbols), and then spelled out for English (expand).
@pytest.mark.parametrize("raw, read, spoken", [
    ("😀", "", ""),
    ("Hello 👋🏽 world 🌍 👨\u200d👩\u200d👧", "Hello world", "Hello world"),
    ("I ❤️ NY 🇺🇸!", "I NY !", "I NY !"),
    ("Rated ★★★★☆ overall", "Rated overall", "Rated overall"),
    ("Done ✓ → next", "Done next", "Done next"),
    ("㎯", "", ""),  # SQUARE RAD OVER S SQUARED: no plain reading, dropped
    ("a 5 ㎜ screw", "a 5 mm screw", "a five millimeter screw"),
    ("It was 20℃ today", "It was 20°C today", "It was twenty degrees Celsius today"),
    ("№ 5", "number 5", "number five"),
    ("Press #️⃣ or 1️⃣", "Press # or 1", "Press # or one"),
    ("A & B", "A & B", "A and B"),
    ("50% off", "50% off", "fifty percent off"),
    ("100%", "100%", "one hundred percent"),
    ("x ≤ 3 × y ± 1", "x ≤ 3 × y ± 1", "x ≤ three × y ± one"),
    ("Café © 2024 ™", "Café © 2024 ™", "Café © twenty twenty four ™"),
    ("€5 ₹", "€5 ₹", "five euros ₹"),  # currency signs kept
    ("ⓐ ⓑ", "a b", "a b"),
    ("Z̷̢͈a̸͎l̶̰g̵̝o̴̩ 日本", "Z̷̢͈a̸͎l̶̰g̵̝o̴̩ 日本", "Z̷̢͈a̸͎l̶̰g̵̝o̴̩ 日本"),  # letters and their marks kept
])
def test_emoji_and_symbols_are_read_or_dropped(raw, read, spoken):
    assert read_symbols(clean(raw)) == read
    assert expand(read) == spoken
