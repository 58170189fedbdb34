"""The words people use for items: a lexicon of the attribute values' phrasings, a generator of
varied descriptions of an item (the text augmentation of the dual model's `text-aug` stage) and the
rule parser that reads a description back into attribute values.

The lexicon has two halves. `TRAIN` phrasings are what the augmentation writes and the parser
knows; `HELD_OUT` phrasings (other synonyms, other openings) are never used in training, so that a
benchmark can ask whether the model learned to read descriptions rather than to recognise the
training phrases. A value the lexicon does not know (another dataset's attributes) is said as
itself.

A phrasing goes before the noun ("red", "striped", "knitted") unless it starts with a preposition
("in navy", "with long sleeves", "made of silk"), in which case it follows the noun.

>>> book = Phrasebook(vocab)                       # a dual model's TextVocabulary
>>> book.describe("shirt", {"color": "red", "pattern": "stripes", ...}, rng, keep=0.7)
'show me a scarlet striped shirt in a casual style, with long sleeves'
>>> book.parse("a red striped casual shirt")       # (category, {attribute: value})
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from modiste.design.dual import ATTRIBUTES, TextVocabulary

TRAIN, HELD_OUT = "train", "held-out"
_POST = ("in ", "with ", "made of ", "for ", "without ", "cut ")


@dataclass(frozen=True)
class Phrases:
    train: tuple[str, ...]
    held_out: tuple[str, ...]

    def of(self, split: str) -> tuple[str, ...]:
        return self.train if split == TRAIN else self.held_out


def _colour(train: str, held_out: str) -> Phrases:
    """Colour words go before the noun or after "in"."""
    words = [w.strip() for w in train.split(",")], [w.strip() for w in held_out.split(",")]
    return Phrases(*(tuple(w for word in ws for w in (word, f"in {word}")) for ws in words))


def _phrases(train: str, held_out: str) -> Phrases:
    return Phrases(tuple(w.strip() for w in train.split(",")), tuple(w.strip() for w in held_out.split(",")))


LEXICON: dict[str, dict[str, Phrases]] = {
    "color": {
        "beige": _colour("beige, tan, sand", "camel, oatmeal"),
        "black": _colour("black, jet black", "ebony, onyx"),
        "blue": _colour("blue, royal blue", "cobalt, sapphire"),
        "brown": _colour("brown, chocolate", "chestnut, coffee"),
        "burgundy": _colour("burgundy, wine", "maroon, oxblood"),
        "green": _colour("green, emerald", "kelly green, forest green"),
        "grey": _colour("grey, gray", "charcoal, slate"),
        "light blue": _colour("light blue, sky blue", "baby blue, powder blue"),
        "navy": _colour("navy, navy blue", "midnight blue, dark blue"),
        "olive": _colour("olive, olive green", "army green, moss"),
        "orange": _colour("orange, tangerine", "pumpkin, apricot"),
        "pink": _colour("pink, rose", "blush, fuchsia"),
        "purple": _colour("purple, violet", "plum, lilac"),
        "red": _colour("red, scarlet", "crimson, cherry red"),
        "white": _colour("white, snow white", "ivory, off-white"),
        "yellow": _colour("yellow, lemon", "mustard, golden"),
    },
    "pattern": {
        "checks": _phrases("checked, check, plaid, with checks", "gingham, tartan, with a checkerboard print"),
        "dots": _phrases("polka-dot, dotted, with dots", "spotted, with polka dots, with a spotted print"),
        "floral": _phrases("floral, flower-print, with flowers", "flowered, botanical, with a flower pattern"),
        "solid": _phrases("plain, solid, without a pattern", "unpatterned, in one colour, single-colour"),
        "stripes": _phrases("striped, stripy, with stripes", "pinstriped, banded, with a striped print"),
    },
    "material": {
        "cotton": _phrases("cotton, made of cotton", "poplin, in cotton twill"),
        "denim": _phrases("denim, jean, made of denim", "chambray, in denim cloth"),
        "knit": _phrases("knit, knitted, made of knit", "jersey, in a knitted fabric"),
        "leather": _phrases("leather, made of leather", "suede, in nappa leather"),
        "silk": _phrases("silk, silky, made of silk", "satin, in charmeuse"),
    },
    "silhouette": {
        "a-line": _phrases("a-line, with an a-line cut", "trapeze, with a triangle cut"),
        "fitted": _phrases("fitted, close-fitting", "form-fitting, body-hugging"),
        "flared": _phrases("flared, with a flare", "bell-bottom, fluted"),
        "oversized": _phrases("oversized, loose", "baggy, roomy"),
        "pencil": _phrases("pencil, pencil-cut", "tube, with a narrow tube cut"),
        "pleated": _phrases("pleated, with pleats", "accordion-pleated, with folds"),
        "regular": _phrases("regular, regular-fit", "standard-fit, classic-fit"),
        "sheath": _phrases("sheath, with a sheath cut", "column, body-skimming"),
        "slim": _phrases("slim, slim-fit", "skinny, tapered"),
        "straight": _phrases("straight, straight-leg", "straight-cut, with a straight line"),
        "wide": _phrases("wide, wide-leg", "palazzo, loose-leg"),
        # nouns: the silhouette is what the item is called (see NOUN_SILHOUETTES)
        "backpack": _phrases("backpack, rucksack", "daypack"),
        "belt": _phrases("belt, waist belt", "cinch belt"),
        "boot": _phrases("boots, ankle boots", "booties"),
        "clutch": _phrases("clutch, clutch bag", "pouch"),
        "hat": _phrases("hat, cap", "bonnet"),
        "heel": _phrases("heels, pumps", "stilettos"),
        "scarf": _phrases("scarf, neck scarf", "shawl, muffler"),
        "sneaker": _phrases("sneakers, trainers", "plimsolls, kicks"),
        "tote": _phrases("tote, tote bag", "shopper bag"),
    },
    "design": {
        "crew neck": _phrases("with a crew neck, crew-neck", "with a round neckline, round-neck"),
        "cropped": _phrases("cropped, with a cropped length", "midriff-baring, with a short crop"),
        "full length": _phrases("full-length, with a full length", "floor-length, ankle-grazing"),
        "high": _phrases("high, with a high heel", "tall, with a tall shaft"),
        "hip length": _phrases("hip-length, with a hip length", "hip-grazing, with a hip-level hem"),
        "knee length": _phrases("knee-length, with a knee length", "knee-grazing, with a hem at the knee"),
        "large": _phrases("large, big", "roomy-sized, generous"),
        "long": _phrases("long, with a long length", "longline, extra-long"),
        "long sleeve": _phrases("long-sleeved, with long sleeves", "with full sleeves, full-sleeved"),
        "low": _phrases("low, with a low heel", "flat, with a flat sole"),
        "maxi": _phrases("maxi, with a maxi length", "floor-sweeping, with a sweeping hem"),
        "medium": _phrases("medium, medium-sized", "moderate-sized, middling"),
        "mid": _phrases("mid-height, with a mid heel", "midi-height, with a middle heel"),
        "mini": _phrases("mini, with a mini length", "micro, very short"),
        "narrow": _phrases("narrow, with a narrow cut", "thin, slender"),
        "regular": _phrases("with a regular cut, regular-cut", "with a standard cut, standard-cut"),
        "short sleeve": _phrases("short-sleeved, with short sleeves", "with cap sleeves, half-sleeved"),
        "shorts": _phrases("with a shorts length, shorts-length", "above-the-knee, hot-pant"),
        "sleeveless": _phrases("sleeveless, with no sleeves", "armless, with bare arms"),
        "small": _phrases("small, little", "petite, tiny"),
        "turtleneck": _phrases("turtleneck, with a roll neck", "mock-neck, with a polo neck"),
        "v-neck": _phrases("v-neck, with a v-neck", "with a plunging neckline, plunge-neck"),
        "wide": _phrases("with a wide cut, wide-cut", "broad, with a broad cut"),
    },
    "style": {
        "boho": _phrases("boho, bohemian, in a boho style", "hippie, free-spirited, for a festival look"),
        "casual": _phrases("casual, everyday, in a casual style", "relaxed, laid-back, for a weekend look"),
        "formal": _phrases("formal, dressy, in a formal style", "elegant, smart, for the office"),
        "sporty": _phrases("sporty, athletic, in a sporty style", "athleisure, gym-ready, for a workout"),
        "street": _phrases("street, streetwear, in a street style", "urban, edgy, for a city look"),
    },
}

# Silhouettes that are the item's name ("sneakers", not "sneaker shoes").
NOUN_SILHOUETTES = ("backpack", "belt", "boot", "clutch", "hat", "heel", "scarf", "sneaker", "tote")

CATEGORY_NOUNS: dict[str, Phrases] = {
    "accessory": _phrases("accessory", "add-on"),
    "bag": _phrases("bag, handbag", "purse"),
    "dress": _phrases("dress, frock", "gown"),
    "outerwear": _phrases("jacket, coat", "parka, overcoat"),
    "shirt": _phrases("shirt, button-down", "blouse"),
    "shoes": _phrases("shoes, pair of shoes", "footwear"),
    "skirt": _phrases("skirt", "skirt"),
    "sweater": _phrases("sweater, jumper", "pullover"),
    "top": _phrases("top, tee", "t-shirt"),
    "trousers": _phrases("trousers, pants", "slacks"),
}

OPENINGS = Phrases(("", "a", "a", "I'd like a", "show me a", "looking for a", "make me a", "draw a"),
                   ("design me a", "something like a", "could I get a", "picture a"))
JOINS = Phrases((", ", " and ", ", "), (", ", "; ", " plus "))


def _normalise(text: str) -> str:
    return " " + re.sub(r"\s+", " ", re.sub(r"[^a-z0-9\- ]+", " ", text.lower())) + " "


class Phrasebook:
    """Descriptions of a vocabulary's items, and their reading back."""

    def __init__(self, vocab: TextVocabulary):
        self.vocab = vocab

    def phrases(self, attribute: str, value: str, split: str = TRAIN) -> tuple[str, ...]:
        known = LEXICON.get(attribute, {}).get(value)
        return known.of(split) if known else (value,)

    def nouns(self, category: str, split: str = TRAIN) -> tuple[str, ...]:
        known = CATEGORY_NOUNS.get(category)
        return known.of(split) if known else (category,)

    def describe(self, category: str, attributes: dict[str, str | None], rng: np.random.Generator,
                 split: str = TRAIN, keep: float = 1.0) -> str:
        """One description of an item: each attribute said with chance `keep` (at least one is), in a
        random phrasing and order, with the `split`'s words."""
        said = [a for a in ATTRIBUTES if attributes.get(a) is not None and rng.random() < keep]
        if not said:
            said = [a for a in ATTRIBUTES if attributes.get(a) is not None][:1]
        noun = str(rng.choice(self.nouns(category, split)))
        if "silhouette" in said and attributes["silhouette"] in NOUN_SILHOUETTES:
            said.remove("silhouette")
            noun = str(rng.choice(self.phrases("silhouette", attributes["silhouette"], split)))
        before, after = [], []
        for a in rng.permutation(said):
            phrase = str(rng.choice(self.phrases(str(a), str(attributes[a]), split)))
            if phrase:
                (after if phrase.startswith(_POST) else before).append(phrase)
        join = str(rng.choice(JOINS.of(split)))
        text = " ".join(w for w in (str(rng.choice(OPENINGS.of(split))), *before, noun) if w)
        return text + "".join((", " if k == 0 else join) + phrase for k, phrase in enumerate(after))

    def parse(self, description: str) -> tuple[int, dict[str, str]]:
        """(category index, {attribute: value}) from the words the lexicon's training half knows.

        The category is named by a category noun (any half: it is not what is measured), or by a
        silhouette that is a noun and belongs to one category ("sneakers"). Longer phrases match
        first ("light blue" before "blue")."""
        text = _normalise(description)
        categories = self.vocab.categories
        naming = [(n, k) for k, c in enumerate(categories) for split in (TRAIN, HELD_OUT)
                  for n in {*self.nouns(c, split), c}]
        owners = {v: [k for k, c in enumerate(categories) if v in self.vocab.by_category[c]["silhouette"]]
                  for v in self.vocab.values["silhouette"]}
        naming += [(n, owners[v][0]) for v in NOUN_SILHOUETTES if len(owners.get(v, [])) == 1
                   for split in (TRAIN, HELD_OUT) for n in self.phrases("silhouette", v, split)]
        found = [(n, k) for n, k in naming if _has(text, n)]
        if not found:
            raise ValueError(f"the description names no category; say one of: {', '.join(categories)}")
        category = max(found, key=lambda nk: len(nk[0]))[1]
        candidates = sorted(((p, a, v) for a in ATTRIBUTES for v in self.vocab.by_category[categories[category]][a]
                             for p in {*self.phrases(a, v), v} if p), key=lambda t: -len(t[0]))
        given: dict[str, str] = {}
        for phrase, attribute, value in candidates:
            if attribute not in given and _has(text, phrase):
                given[attribute] = value
                text = text.replace(_normalise(phrase), " ", 1)
        return category, given


def _has(text: str, phrase: str) -> bool:
    """Whether the normalised text holds the phrase as whole words (a plural -s allowed)."""
    words = _normalise(phrase).strip()
    return f" {words} " in text or f" {words}s " in text
