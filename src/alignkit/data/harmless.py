"""``harmless-instructions``: a **templated** generator of harmless instructions with verifiable answers.

No harmless instruction dataset (Alpaca, Dolly, ...) ships offline, so alignkit builds one. It serves as the
harmless reference data for stability (perplexity / harmless CE) and as a small capability probe: every row
has an exact short ``answer`` (``Instruction.is_correct(completion)`` checks a completion for it).

Task families (``Instruction.task``), each with several phrasings:
- ``arithmetic``: addition, subtraction, multiplication of small integers;
- ``unit_conversion``: metric length / mass / volume and time units (integer results);
- ``capital``: capital cities of 60 countries;
- ``synonym`` / ``antonym``: fixed word pairs (the answer is the pair's word);
- ``sorting``: sort numbers ascending/descending or words alphabetically;
- ``word_count`` / ``letter_count``: count words of a generated sentence, letters of a word;
- ``fact``: short factual templates (day after/before a weekday, month after a month, plural of a noun,
  even or odd, next letter of the alphabet).

Content is fixed (``random.Random("alignkit-harmless-v1")``, :data:`TARGET` rows per family, 3,000 rows,
unique on normalised instruction); the split seed only decides the 90/10 train/test split, stratified by task.
"""

from __future__ import annotations

import functools
import random

from alignkit.data.base import assign_splits, dataset, normalize_text, stable_id
from alignkit.data.records import Instruction

SOURCE = "alignkit templated generator (alignkit.data.harmless)"
SPLITS = ("train", "test")
FRACTIONS = {"train": 0.9, "test": 0.1}

CAPITALS = {
    "France": "Paris", "Germany": "Berlin", "Italy": "Rome", "Spain": "Madrid", "Portugal": "Lisbon",
    "Japan": "Tokyo", "China": "Beijing", "India": "New Delhi", "Canada": "Ottawa", "Australia": "Canberra",
    "Brazil": "Brasilia", "Argentina": "Buenos Aires", "Mexico": "Mexico City", "Egypt": "Cairo",
    "Kenya": "Nairobi", "Nigeria": "Abuja", "Russia": "Moscow", "Norway": "Oslo", "Sweden": "Stockholm",
    "Finland": "Helsinki", "Denmark": "Copenhagen", "Poland": "Warsaw", "Austria": "Vienna",
    "Greece": "Athens", "Turkey": "Ankara", "Ireland": "Dublin", "Netherlands": "Amsterdam",
    "Belgium": "Brussels", "Switzerland": "Bern", "Hungary": "Budapest", "Czechia": "Prague",
    "Romania": "Bucharest", "Ukraine": "Kyiv", "Thailand": "Bangkok", "Vietnam": "Hanoi",
    "South Korea": "Seoul", "Indonesia": "Jakarta", "Philippines": "Manila", "Peru": "Lima", "Chile": "Santiago",
    "Colombia": "Bogota", "Cuba": "Havana", "Morocco": "Rabat", "Ghana": "Accra", "Ethiopia": "Addis Ababa",
    "Iran": "Tehran", "Iraq": "Baghdad", "Saudi Arabia": "Riyadh", "Pakistan": "Islamabad",
    "Bangladesh": "Dhaka", "Nepal": "Kathmandu", "Iceland": "Reykjavik", "New Zealand": "Wellington",
    "Scotland": "Edinburgh", "Wales": "Cardiff", "Croatia": "Zagreb", "Serbia": "Belgrade",
    "Bulgaria": "Sofia", "Latvia": "Riga", "Estonia": "Tallinn",
}
SYNONYMS = [("happy", "joyful"), ("big", "large"), ("small", "tiny"), ("fast", "quick"), ("smart", "clever"),
            ("begin", "start"), ("end", "finish"), ("angry", "furious"), ("easy", "simple"), ("hard", "difficult"),
            ("rich", "wealthy"), ("sad", "unhappy"), ("shut", "close"), ("buy", "purchase"), ("help", "assist"),
            ("answer", "reply"), ("brave", "courageous"), ("calm", "peaceful"), ("cold", "chilly"),
            ("gift", "present"), ("look", "glance"), ("quiet", "silent"), ("strange", "odd"), ("tired", "sleepy"),
            ("wrong", "incorrect"), ("house", "home"), ("choose", "select"), ("funny", "amusing"),
            ("pretty", "beautiful"), ("shout", "yell")]
ANTONYMS = [("hot", "cold"), ("big", "small"), ("up", "down"), ("fast", "slow"), ("happy", "sad"),
            ("light", "dark"), ("early", "late"), ("open", "closed"), ("full", "empty"), ("old", "new"),
            ("hard", "soft"), ("rich", "poor"), ("strong", "weak"), ("wet", "dry"), ("high", "low"),
            ("long", "short"), ("loud", "quiet"), ("true", "false"), ("win", "lose"), ("push", "pull"),
            ("inside", "outside"), ("first", "last"), ("thick", "thin"), ("heavy", "light"), ("clean", "dirty"),
            ("buy", "sell"), ("arrive", "leave"), ("before", "after"), ("accept", "reject"), ("always", "never")]
PLURALS = {"child": "children", "mouse": "mice", "foot": "feet", "tooth": "teeth", "goose": "geese",
           "man": "men", "woman": "women", "person": "people", "leaf": "leaves", "knife": "knives",
           "city": "cities", "box": "boxes", "bus": "buses", "baby": "babies", "wolf": "wolves",
           "potato": "potatoes", "sheep": "sheep", "fish": "fish", "cactus": "cacti", "ox": "oxen"}
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December"]
WORDS = ["apple", "river", "garden", "pencil", "cloud", "window", "orange", "bridge", "candle", "forest",
         "guitar", "ladder", "mountain", "basket", "rocket", "violin", "tiger", "lemon", "marble", "planet",
         "harbor", "island", "jacket", "kettle", "meadow", "needle", "pillow", "saddle", "tunnel", "wagon"]
SUBJECTS = ["The cat", "My brother", "A small bird", "The teacher", "Our neighbor", "The old dog", "Anna",
            "The children", "A tall man", "The baker"]
VERBS = ["sat", "walked", "looked", "waited", "sang", "slept", "read", "played", "worked", "smiled"]
TAILS = ["on the mat", "in the park", "by the window", "near the river", "under the tree", "at home",
         "after lunch", "in the quiet garden", "with a friend", "for a long time", "all day", "on Sunday morning"]
UNITS = [("kilometres", "metres", 1000), ("metres", "centimetres", 100), ("centimetres", "millimetres", 10),
         ("kilograms", "grams", 1000), ("litres", "millilitres", 1000), ("hours", "minutes", 60),
         ("minutes", "seconds", 60), ("days", "hours", 24), ("weeks", "days", 7), ("years", "months", 12)]

TARGET = {"arithmetic": 600, "unit_conversion": 350, "capital": 180, "synonym": 90, "antonym": 90,
          "sorting": 500, "word_count": 400, "letter_count": 150, "fact": 640}


def _arithmetic(rng: random.Random):
    a, b = rng.randint(2, 99), rng.randint(2, 99)
    op = rng.choice(["+", "-", "*"])
    if op == "-" and b > a:
        a, b = b, a
    val = {"+": a + b, "-": a - b, "*": a * b}[op]
    word = {"+": "plus", "-": "minus", "*": "times"}[op]
    sym = "x" if op == "*" else op
    q = rng.choice([f"What is {a} {sym} {b}?", f"Calculate {a} {word} {b}.", f"Compute {a} {sym} {b}.",
                    f"What do you get when you compute {a} {word} {b}?"])
    return q, f"{a} {sym} {b} = {val}. The answer is {val}.", str(val)


def _unit(rng: random.Random):
    big, small, factor = rng.choice(UNITS)
    n = rng.randint(2, 60)
    q = rng.choice([f"Convert {n} {big} to {small}.", f"How many {small} are in {n} {big}?",
                    f"Express {n} {big} in {small}."])
    return q, f"There are {factor} {small} in one {big[:-1]}, so {n} {big} is {n * factor} {small}.", str(n * factor)


def _capital(rng: random.Random):
    country = rng.choice(list(CAPITALS))
    cap = CAPITALS[country]
    q = rng.choice([f"What is the capital of {country}?", f"Name the capital city of {country}.",
                    f"Which city is the capital of {country}?"])
    return q, f"The capital of {country} is {cap}.", cap


def _synonym(rng: random.Random):
    w, s = rng.choice(SYNONYMS)
    q = rng.choice([f"Give a synonym for the word '{w}'.", f"What is another word for '{w}'?",
                    f"Name a word that means the same as '{w}'."])
    return q, f"A synonym for '{w}' is '{s}'.", s


def _antonym(rng: random.Random):
    w, a = rng.choice(ANTONYMS)
    q = rng.choice([f"What is the opposite of '{w}'?", f"Give an antonym for the word '{w}'.",
                    f"Name a word that means the opposite of '{w}'."])
    return q, f"The opposite of '{w}' is '{a}'.", a


def _sorting(rng: random.Random):
    if rng.random() < 0.6:
        nums = rng.sample(range(1, 100), rng.randint(3, 6))
        desc = rng.random() < 0.4
        order = "descending" if desc else "ascending"
        ans = ", ".join(str(x) for x in sorted(nums, reverse=desc))
        q = rng.choice([f"Sort these numbers in {order} order: {', '.join(map(str, nums))}.",
                        f"Arrange {', '.join(map(str, nums))} from {'largest to smallest' if desc else 'smallest to largest'}."])
        return q, f"In {order} order: {ans}.", ans
    words = rng.sample(WORDS, rng.randint(3, 5))
    ans = ", ".join(sorted(words))
    q = rng.choice([f"Sort these words alphabetically: {', '.join(words)}.",
                    f"Put these words in alphabetical order: {', '.join(words)}."])
    return q, f"In alphabetical order: {ans}.", ans


def _word_count(rng: random.Random):
    sent = f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(TAILS)}."
    n = len(sent.split())
    q = rng.choice([f"How many words are in this sentence: \"{sent}\"",
                    f"Count the words in the sentence \"{sent}\""])
    return q, f"The sentence \"{sent}\" has {n} words.", str(n)


def _letter_count(rng: random.Random):
    w = rng.choice(WORDS + [p for p in PLURALS] + [c.lower() for c in CAPITALS if " " not in c])
    q = rng.choice([f"How many letters are in the word '{w}'?", f"Count the letters in '{w}'.",
                    f"How many letters does the word '{w}' have?"])
    return q, f"The word '{w}' has {len(w)} letters.", str(len(w))


def _fact(rng: random.Random):
    kind = rng.randrange(6)
    if kind == 0:
        d = rng.randrange(7)
        return (f"What day comes after {DAYS[d]}?", f"The day after {DAYS[d]} is {DAYS[(d + 1) % 7]}.",
                DAYS[(d + 1) % 7])
    if kind == 1:
        d = rng.randrange(7)
        return (f"What day comes before {DAYS[d]}?", f"The day before {DAYS[d]} is {DAYS[d - 1]}.", DAYS[d - 1])
    if kind == 2:
        m = rng.randrange(12)
        return (f"Which month comes after {MONTHS[m]}?", f"The month after {MONTHS[m]} is {MONTHS[(m + 1) % 12]}.",
                MONTHS[(m + 1) % 12])
    if kind == 3:
        w = rng.choice(list(PLURALS))
        return (f"What is the plural of '{w}'?", f"The plural of '{w}' is '{PLURALS[w]}'.", PLURALS[w])
    if kind == 4:
        n = rng.randint(1, 999)
        parity = "even" if n % 2 == 0 else "odd"
        return f"Is {n} an even or an odd number?", f"{n} is an {parity} number.", parity
    c = chr(ord("a") + rng.randrange(25))
    nxt = chr(ord(c) + 1)
    return (f"Which letter comes after '{c}' in the English alphabet?",
            f"The letter after '{c}' is '{nxt}'.", nxt)


GENERATORS = {"arithmetic": _arithmetic, "unit_conversion": _unit, "capital": _capital, "synonym": _synonym,
              "antonym": _antonym, "sorting": _sorting, "word_count": _word_count,
              "letter_count": _letter_count, "fact": _fact}


@functools.lru_cache(maxsize=1)
def generate() -> tuple[Instruction, ...]:
    """All rows, fixed content, unique on normalised instruction."""
    rng = random.Random("alignkit-harmless-v1")
    rows: list[Instruction] = []
    seen: set[str] = set()
    for task, target in TARGET.items():
        gen, made, tries = GENERATORS[task], 0, 0
        while made < target and tries < target * 50:
            tries += 1
            q, resp, ans = gen(rng)
            key = normalize_text(q)
            if key in seen:
                continue
            seen.add(key)
            rows.append(Instruction(id=stable_id("harmless", key), source=SOURCE, instruction=q, response=resp,
                                    answer=ans, task=task))
            made += 1
    return tuple(rows)


@dataset("harmless-instructions", record=Instruction, splits=SPLITS, license="Apache-2.0 (alignkit, generated)",
         source=SOURCE,
         description="Templated harmless instructions with exact short answers (arithmetic, units, capitals, "
                     "synonyms/antonyms, sorting, counting, facts): stability data and a capability probe.",
         notes="generated, not human-written; 90/10 train/test by seed, stratified by task")
def _build_harmless(seed: int = 0):
    rows = generate()
    table = assign_splits([r.id for r in rows], seed, FRACTIONS, strata={r.id: r.task for r in rows},
                          salt="harmless")
    out: dict[str, list[Instruction]] = {s: [] for s in SPLITS}
    for r in rows:
        out[table[r.id]].append(r)
    return out
