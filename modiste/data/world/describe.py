"""Captions and natural-language descriptions of synthetic items."""

from __future__ import annotations

import json

_PATTERN_WORD = {"solid": "", "stripes": "striped ", "checks": "checked ", "dots": "polka-dot ", "floral": "floral "}
_NOUN = {"top": "top", "shirt": "shirt", "sweater": "sweater", "trousers": "trousers", "skirt": "skirt",
         "dress": "dress"}
_DESIGN_PHRASE = {
    "sleeveless": "no sleeves", "short sleeve": "short sleeves", "long sleeve": "long sleeves",
    "crew neck": "a crew neck", "v-neck": "a v-neck", "turtleneck": "a turtleneck",
    "cropped": "a cropped length", "hip length": "a hip length", "long": "a long length",
    "shorts": "a shorts length", "full length": "a full length", "mini": "a mini length",
    "knee length": "a knee length", "maxi": "a maxi length", "small": "a small size", "medium": "a medium size",
    "large": "a large size", "narrow": "a narrow cut", "regular": "a regular cut", "wide": "a wide cut",
}
_PLURALS = {"trousers", "sneakers", "boots", "heels"}
_TEMPLATES = (
    "{a}{sil}{color} {pattern}{material} {noun} with {design}, in a {style} style.",
    "{Style} {noun} in {pattern}{color} {material}, {sil}with {design}.",
    "{this} {color} {noun} {is_} {sil_then}made of {pattern}{material}, with {design}: a {style} {piece}.",
)


def caption(category: str, attrs: dict[str, str]) -> str:
    """The structured caption: a JSON object with the keys of `schema.CAPTION_KEYS`."""
    return json.dumps({
        "Category": category, "Color": attrs["color"], "Pattern": attrs["pattern"],
        "Material": attrs["material"], "Silhouette": attrs["silhouette"], "Design": attrs["design"],
        "Style": attrs["style"],
    })


def description(category: str, attrs: dict[str, str], variant: int) -> str:
    """One of a few phrasings (chosen by `variant`) of the item's attributes in plain English."""
    sil, design = attrs["silhouette"], attrs["design"]
    if category == "outerwear":
        noun, sil_word = ("coat" if design == "long" else "jacket"), f"{sil} "
    elif category in _NOUN:
        noun, sil_word = _NOUN[category], f"{sil} "
    else:  # shoes, bags and accessories: the silhouette is the noun
        noun = {"sneaker": "sneakers", "boot": "boots", "heel": "heels"}.get(sil, sil)
        sil_word = ""
    if category == "shoes":
        design_phrase = f"a {design} {'heel' if sil == 'heel' else 'shaft'}"
    else:
        design_phrase = _DESIGN_PHRASE[design]
    plural = noun in _PLURALS
    first_word = sil_word or attrs["color"]
    article = "" if plural else ("an " if first_word[0] in "aeiou" else "a ")
    text = _TEMPLATES[variant % len(_TEMPLATES)].format(
        a=article, sil=sil_word, sil_then=f"{sil_word.strip()}, " if sil_word else "", color=attrs["color"], pattern=_PATTERN_WORD[attrs["pattern"]],
        material=attrs["material"], noun=noun, design=design_phrase, style=attrs["style"],
        Style=attrs["style"].capitalize(), this="These" if plural else "This", is_="are" if plural else "is",
        piece="pair" if plural and noun != "trousers" else "piece",
    )
    return text[0].upper() + text[1:]

