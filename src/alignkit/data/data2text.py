"""``data2text``: a **templated** data-to-text task in the style of E2E NLG (restaurant domain), for trainability.

E2E NLG and ViGGO are not available offline, so alignkit generates an equivalent task: a meaning
representation (MR) in E2E syntax, e.g.::

    name[The Eagle], eatType[coffee shop], food[French], priceRange[moderate], area[riverside], familyFriendly[yes]

and a fluent reference sentence realised from it by one of several surface templates (5 sentence plans,
2-3 phrasings per attribute). Attributes as in E2E:
name (always), eatType, food, priceRange, customer rating, area, familyFriendly, near; each MR has the name
plus 2-7 others. Content is fixed (``random.Random("alignkit-data2text-v1")``, :data:`N_ROWS` unique MRs);
the split seed decides a 90/10 train/test split (disjoint by MR). A model fine-tuned on train is scored on
test with ROUGE-1 against ``text`` (elsewhere, in conditions/).
"""

from __future__ import annotations

import functools
import random

from alignkit.data.base import assign_splits, dataset, stable_id
from alignkit.data.records import DataToText

SOURCE = "alignkit templated generator (alignkit.data.data2text), E2E NLG style"
SPLITS = ("train", "test")
N_ROWS = 2000

NAMES = ["The Eagle", "The Mill", "Blue Spice", "The Punter", "Green Man", "The Phoenix", "Zizzi", "Alimentum",
         "Aromi", "Bibimbap House", "Browns Cambridge", "Clowns", "Cocum", "Cotto", "Fitzbillies", "Giraffe",
         "Loch Fyne", "Midsummer House", "Strada", "Taste of Cambridge", "The Cricketers", "The Dumpling Tree",
         "The Golden Curry", "The Olive Grove", "The Plough", "The Rice Boat", "The Twenty Two", "The Vaults",
         "The Waterman", "Wildwood", "The Wrestlers", "The Cambridge Blue", "Travellers Rest Beefeater",
         "The Golden Palace", "The Copper Kettle", "The Red Lion", "Luna Verde", "The Brass Anchor",
         "Saffron Garden", "The Blue Heron"]
EAT_TYPES = ["restaurant", "coffee shop", "pub"]
FOODS = ["French", "Italian", "Chinese", "Indian", "Japanese", "English", "Fast food"]
PRICES = ["cheap", "moderate", "high", "less than £20", "£20-25", "more than £30"]
RATINGS = ["low", "average", "high", "1 out of 5", "3 out of 5", "5 out of 5"]
AREAS = ["riverside", "city centre"]
NEAR = ["Burger King", "Café Rouge", "The Bakers", "Raja Indian Cuisine", "Express by Holiday Inn",
        "Crowne Plaza Hotel", "Café Sicilia", "The Portland Arms", "Yippee Noodle Bar", "Rainbow Vegetarian Café",
        "Ranch", "The Sorrento", "Avalon", "All Bar One", "Clare Hall"]
ORDER = ["name", "eatType", "food", "priceRange", "customer rating", "area", "familyFriendly", "near"]
OPTIONAL = {"eatType": EAT_TYPES, "food": FOODS, "priceRange": PRICES, "customer rating": RATINGS,
            "area": AREAS, "familyFriendly": ["yes", "no"], "near": NEAR}


def format_mr(mr: dict[str, str]) -> str:
    return ", ".join(f"{k}[{mr[k]}]" for k in ORDER if k in mr)


def _a(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def _modifier(key: str, v: str, rng: random.Random) -> str:
    """Post-nominal phrase: 'with cheap prices', 'rated 3 out of 5 by customers'."""
    if key == "priceRange":
        return rng.choice([f"with prices {v}", f"where a meal costs {v}"]) if "£" in v else \
            rng.choice([f"with {v} prices", f"in the {v} price range"])
    if key == "customer rating":
        return rng.choice([f"with {_a(v)} {v} customer rating", f"rated {v} by customers"])
    raise KeyError(key)


def _predicate(key: str, v: str, rng: random.Random) -> str:
    """Verb phrase after 'It': 'has cheap prices', 'is family friendly', 'is near Burger King'."""
    if key == "priceRange":
        return rng.choice([f"has prices {v}", f"charges {v} for a meal"]) if "£" in v else \
            rng.choice([f"has {v} prices", f"is in the {v} price range"])
    if key == "customer rating":
        return rng.choice([f"has {_a(v)} {v} customer rating", f"is rated {v} by customers"])
    if key == "familyFriendly":
        if v == "yes":
            return rng.choice(["is family friendly", "welcomes children", "is kid friendly"])
        return rng.choice(["is not family friendly", "does not welcome children", "is not kid friendly"])
    if key == "area":
        return "is " + _area(v, rng)
    if key == "near":
        return "is " + _near(v, rng)
    raise KeyError(key)


def _area(v: str, rng: random.Random) -> str:
    if v == "riverside":
        return rng.choice(["in the riverside area", "by the riverside"])
    return rng.choice(["in the city centre", "in the centre of the city"])


def _near(v: str, rng: random.Random) -> str:
    return rng.choice([f"near {v}", f"close to {v}"])


def _join(parts: list[str]) -> str:
    parts = [p for p in parts if p]
    if len(parts) <= 1:
        return "".join(parts)
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def realise(mr: dict[str, str], rng: random.Random) -> str:
    """One or two fluent sentences covering every attribute of ``mr`` (5 sentence plans)."""
    name = mr["name"]
    eat = mr.get("eatType", "place")
    food = mr.get("food")
    food_adj = "fast food" if food == "Fast food" else food
    head = f"{_a(food_adj or eat)} {food_adj} {eat}" if food_adj else f"{_a(eat)} {eat}"
    where = " ".join(p for p in (_area(mr["area"], rng) if "area" in mr else "",
                                 _near(mr["near"], rng) if "near" in mr else "") if p)
    quality = [k for k in ("priceRange", "customer rating") if k in mr]
    fam = _predicate("familyFriendly", mr["familyFriendly"], rng) if "familyFriendly" in mr else ""
    plan = rng.randrange(5)
    if plan in (0, 2):
        mods = _join([_modifier(k, mr[k], rng) for k in quality])
        if plan == 0 or not where:
            s = f"{name} is {head}" + (f" {where}" if where else "") + (f" {mods}" if mods else "") + "."
        else:
            s = f"{where[0].upper() + where[1:]}, {name} is {head}" + (f" {mods}" if mods else "") + "."
        if fam:
            s += f" It {fam}."
    elif plan == 1:
        s = f"There is {head} called {name}" + (f" {where}" if where else "") + "."
        preds = [_predicate(k, mr[k], rng) for k in quality] + ([fam] if fam else [])
        if preds:
            s += f" It {_join(preds)}."
    else:
        if plan == 3:
            s = f"{name} is {head}" + (f" {where}" if where else "") + "."
        else:
            s = f"If you are looking for {head}" + (f" {where}" if where else "") + f", try {name}."
        preds = [_predicate(k, mr[k], rng) for k in quality] + ([fam] if fam else [])
        if preds:
            s += f" It {_join(preds)}."
    s = " ".join(s.split())
    return s[0].upper() + s[1:]


@functools.lru_cache(maxsize=1)
def generate() -> tuple[DataToText, ...]:
    rng = random.Random("alignkit-data2text-v1")
    rows, seen = [], set()
    while len(rows) < N_ROWS:
        keys = rng.sample(list(OPTIONAL), rng.randint(2, len(OPTIONAL)))
        mr = {"name": rng.choice(NAMES), **{k: rng.choice(OPTIONAL[k]) for k in keys}}
        mr_s = format_mr(mr)
        if mr_s in seen:
            continue
        seen.add(mr_s)
        rows.append(DataToText(id=stable_id("d2t", mr_s), source=SOURCE, mr=mr_s, text=realise(mr, rng)))
    return tuple(rows)


@dataset("data2text", record=DataToText, splits=SPLITS, license="Apache-2.0 (alignkit, generated)", source=SOURCE,
         description="Templated E2E-style restaurant MR -> sentence task (trainability, ROUGE-1).",
         notes="generated from 5 sentence plans; 90/10 train/test by seed, disjoint by MR")
def _build_d2t(seed: int = 0):
    rows = generate()
    table = assign_splits([r.id for r in rows], seed, {"train": 0.9, "test": 0.1}, salt="data2text")
    out: dict[str, list[DataToText]] = {s: [] for s in SPLITS}
    for r in rows:
        out[table[r.id]].append(r)
    return out
