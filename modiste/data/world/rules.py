"""The ground-truth rules of the synthetic world: what goes together, and what suits whom.

Everything here is a fixed table built from the taxonomy, so the generator and the oracle read
the same truth:

- `feature_vocabulary` / `item_features`: every item as a one-hot vector over attribute values.
- `suitability_rules`: a (body label x item feature) matrix; an item's suitability for a body is
  the sum of the entries of the body's labels and the item's attribute values (FCN's signal).
- `pair_compatibility`: how well two items go together (colour harmony, style coherence,
  pattern clash), and `outfit_compatibility`, which adds formality coherence and one item per slot.
"""

from __future__ import annotations

import colorsys
import numpy as np

from modiste.data.world import taxonomy as T

# ---------------------------------------------------------------------------- item features


def feature_vocabulary() -> list[tuple[str, str]]:
    """(attribute, value) pairs, one per one-hot feature, in a fixed order."""
    vocab = [("category", c) for c in T.CATEGORIES]
    vocab += [("color", c) for c in T.COLORS]
    vocab += [("pattern", p) for p in T.PATTERNS]
    vocab += [("material", m) for m in T.MATERIALS]
    vocab += [("silhouette", v) for v in dict.fromkeys(v for c in T.CATEGORIES for v in T.SILHOUETTES[c])]
    vocab += [("design", v) for v in dict.fromkeys(v for c in T.CATEGORIES for v in T.DESIGNS[c])]
    vocab += [("style", s) for s in T.STYLES]
    return vocab


def item_features(attributes: dict[str, np.ndarray]) -> np.ndarray:
    """One-hot features (n_items, n_features) from arrays of attribute values (category included)."""
    vocab = feature_vocabulary()
    index = {key: j for j, key in enumerate(vocab)}
    n = len(attributes["category"])
    x = np.zeros((n, len(vocab)), np.float32)
    for attribute in ("category",) + T.ATTRIBUTES:
        cols = np.array([index[(attribute, v)] for v in attributes[attribute]])
        x[np.arange(n), cols] = 1.0
    return x


def body_vocabulary() -> list[tuple[str, str]]:
    return [(field, v) for field, values in T.BODY_VALUES.items() for v in values]


def body_features(bodies: dict[str, np.ndarray]) -> np.ndarray:
    """One-hot body labels (n, n_body_features)."""
    vocab = body_vocabulary()
    index = {key: j for j, key in enumerate(vocab)}
    n = len(next(iter(bodies.values())))
    b = np.zeros((n, len(vocab)), np.float32)
    for field in T.BODY_VALUES:
        cols = np.array([index[(field, v)] for v in bodies[field]])
        b[np.arange(n), cols] = 1.0
    return b


# ---------------------------------------------------------------------------- suitability

# (body field, body value) -> {(attribute, value): weight}. +: flatters, -: does not.
_SUITS: dict[tuple[str, str], dict[tuple[str, str], float]] = {}


def _suits(field: str, values: tuple[str, ...], **by_attribute: dict[str, float]) -> None:
    for value in values:
        entry = _SUITS.setdefault((field, value), {})
        for attribute, weights in by_attribute.items():
            for v, w in weights.items():
                entry[(attribute, v)] = entry.get((attribute, v), 0.0) + w


_suits("body_figure", ("triangle", "spoon"),
       silhouette={"a-line": 0.6, "flared": 0.5, "straight": 0.4, "slim": -0.6, "pencil": -0.6},
       design={"v-neck": 0.3})
_suits("body_figure", ("inverted_triangle",),
       silhouette={"wide": 0.6, "a-line": 0.4, "pleated": 0.5, "oversized": -0.5},
       design={"v-neck": 0.4, "sleeveless": -0.3})
_suits("body_figure", ("round", "diamond"),
       silhouette={"regular": 0.5, "straight": 0.4, "fitted": -0.6, "sheath": -0.6},
       design={"v-neck": 0.5, "turtleneck": -0.4, "cropped": -0.4}, category={"accessory": -0.2})
_suits("body_figure", ("hourglass", "top_hourglass", "bottom_hourglass"),
       silhouette={"fitted": 0.6, "sheath": 0.6, "pencil": 0.5, "belt": 0.6, "oversized": -0.6})
_suits("body_figure", ("rectangle", "athletic"),
       silhouette={"belt": 0.5, "flared": 0.5, "pleated": 0.4, "a-line": 0.3, "sheath": -0.5, "oversized": -0.2})
_suits("height", ("low",),
       design={"cropped": 0.5, "mini": 0.5, "hip length": 0.3, "maxi": -0.6, "long": -0.6, "high": 0.3},
       silhouette={"heel": 0.4, "wide": -0.4})
_suits("height", ("high",),
       design={"maxi": 0.5, "long": 0.5, "full length": 0.4, "mini": -0.4}, silhouette={"wide": 0.4, "heel": -0.2})
_suits("skin_color", ("fair", "light"),
       color={"navy": 0.5, "pink": 0.4, "light blue": 0.4, "burgundy": 0.4, "beige": -0.5, "yellow": -0.5,
              "orange": -0.4})
_suits("skin_color", ("medium", "olive"),
       color={"olive": 0.4, "brown": 0.3, "green": 0.4, "orange": 0.3, "grey": -0.4, "purple": -0.3})
_suits("skin_color", ("brown", "dark"),
       color={"white": 0.5, "yellow": 0.5, "orange": 0.4, "red": 0.4, "brown": -0.5, "olive": -0.4})
_suits("hair_color", ("red",), color={"green": 0.5, "olive": 0.4, "red": -0.5, "pink": -0.5, "orange": -0.4})
_suits("hair_color", ("blonde",), color={"blue": 0.4, "navy": 0.3, "yellow": -0.5, "beige": -0.4})
_suits("hair_color", ("black",), color={"red": 0.4, "white": 0.3, "black": -0.2})
_suits("hair_color", ("grey",), color={"burgundy": 0.4, "navy": 0.3, "grey": -0.5})
_suits("color_contrast", ("high",), color={"black": 0.4, "white": 0.4, "navy": 0.2, "beige": -0.4})
_suits("color_contrast", ("low",), color={"beige": 0.4, "grey": 0.3, "light blue": 0.3, "black": -0.4})


def suitability_rules() -> np.ndarray:
    """R (n_body_features, n_item_features): suitability(body, item) = b @ R @ x."""
    features = {key: j for j, key in enumerate(feature_vocabulary())}
    bodies = body_vocabulary()
    rules = np.zeros((len(bodies), len(features)), np.float32)
    for i, key in enumerate(bodies):
        for feature, weight in _SUITS.get(key, {}).items():
            rules[i, features[feature]] = weight
    return rules


def lightness(colors) -> np.ndarray:
    """HLS lightness of named colours, 0..1."""
    return np.array([colorsys.rgb_to_hls(*(c / 255 for c in T.PALETTE[name]))[1] for name in colors])


# Outfit-level suitability: people of high colour contrast look best in outfits whose lightness
# spreads widely, people of low contrast in tonal outfits.
CONTRAST_TARGET = {"high": 0.3, "medium": 0.18, "low": 0.06}
CONTRAST_WEIGHT = 3.0


# ---------------------------------------------------------------------------- compatibility

def _hue_degrees(color: str) -> float:
    r, g, b = (c / 255 for c in T.PALETTE[color])
    return colorsys.rgb_to_hls(r, g, b)[0] * 360


def color_harmony() -> np.ndarray:
    """(n_colors, n_colors) score of two colours side by side in an outfit."""
    n = len(T.COLORS)
    h = np.zeros((n, n), np.float32)
    for i, a in enumerate(T.COLORS):
        for j, b in enumerate(T.COLORS):
            if a in T.NEUTRALS or b in T.NEUTRALS:
                h[i, j] = 0.5
            elif a == b:
                h[i, j] = 0.3  # monochrome
            else:
                d = abs(_hue_degrees(a) - _hue_degrees(b))
                d = min(d, 360 - d)
                h[i, j] = 0.7 if d < 40 else (0.4 if d > 150 else -1.0)  # analogous, complementary, clash
    for a, b in (("black", "navy"), ("black", "brown"), ("navy", "brown")):
        i, j = T.COLORS.index(a), T.COLORS.index(b)
        h[i, j] = h[j, i] = -0.6
    return h


_STYLE_PAIRS = {
    ("casual", "street"): 0.3, ("casual", "sporty"): 0.2, ("casual", "boho"): 0.2, ("casual", "formal"): -0.3,
    ("formal", "sporty"): -1.2, ("formal", "street"): -0.8, ("formal", "boho"): -0.6,
    ("sporty", "street"): 0.4, ("sporty", "boho"): -0.6, ("street", "boho"): -0.3,
}


def style_coherence() -> np.ndarray:
    n = len(T.STYLES)
    s = np.full((n, n), 0.0, np.float32)
    for i, a in enumerate(T.STYLES):
        s[i, i] = 0.8
        for j, b in enumerate(T.STYLES):
            if (a, b) in _STYLE_PAIRS:
                s[i, j] = s[j, i] = _STYLE_PAIRS[(a, b)]
    return s


def pattern_clash() -> np.ndarray:
    """Two patterned items clash, two different patterns more so."""
    n = len(T.PATTERNS)
    p = np.zeros((n, n), np.float32)
    for i in range(1, n):
        for j in range(1, n):
            p[i, j] = -0.4 if i == j else -1.0
    return p


class CompatibilityRules:
    """Pairwise and whole-outfit compatibility over items given as attribute codes.

    `codes` holds, per item row, integer codes (category, color, pattern, style) and floats
    (formality, lightness): build it once with `item_codes` for the whole catalogue.
    """

    FORMALITY_WEIGHT = 1.2  # per unit of formality gap between two items
    SLOT_PENALTY = 3.0  # per item that takes a slot already taken

    def __init__(self):
        self.color = color_harmony()
        self.style = style_coherence()
        self.pattern = pattern_clash()
        slots = sorted(set(T.SLOT.values()))
        self.slot_of_category = np.array([slots.index(T.SLOT[c]) for c in T.CATEGORIES])
        self.full_slot = slots.index(T.FULL)
        self.body_slots = [slots.index(T.UPPER), slots.index(T.LOWER)]

    def pair(self, codes: dict[str, np.ndarray], a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Compatibility of item rows a[k] and b[k] (broadcasting): colour, style, pattern, formality."""
        return (self.color[codes["color"][a], codes["color"][b]]
                + self.style[codes["style"][a], codes["style"][b]]
                + self.pattern[codes["pattern"][a], codes["pattern"][b]]
                - self.FORMALITY_WEIGHT * np.abs(codes["formality"][a] - codes["formality"][b]))

    def slot_clashes(self, codes: dict[str, np.ndarray], rows) -> int:
        """How many items take a slot that another item of the outfit already takes."""
        slots = self.slot_of_category[codes["category"][np.asarray(rows)]]
        clashes = len(slots) - len(set(slots.tolist()))
        if self.full_slot in slots:  # a dress already covers the upper and lower body
            clashes += int(np.isin(self.body_slots, slots).sum())
        return clashes

    def outfit(self, codes: dict[str, np.ndarray], rows) -> float:
        """Compatibility of one outfit (a sequence of item rows): the mean pair score, less slot clashes."""
        rows = np.asarray(rows)
        i, j = np.triu_indices(len(rows), k=1)
        score = float(self.pair(codes, rows[i], rows[j]).mean())
        return score - self.SLOT_PENALTY * self.slot_clashes(codes, rows)


def item_codes(attributes: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Integer codes per item for the compatibility rules (and a float formality)."""
    codes = {
        "category": np.array([T.CATEGORIES.index(v) for v in attributes["category"]]),
        "color": np.array([T.COLORS.index(v) for v in attributes["color"]]),
        "pattern": np.array([T.PATTERNS.index(v) for v in attributes["pattern"]]),
        "style": np.array([T.STYLES.index(v) for v in attributes["style"]]),
    }
    codes["formality"] = np.array([
        T.STYLE_FORMALITY[s] + T.MATERIAL_FORMALITY[m] + T.CATEGORY_FORMALITY[c]
        for s, m, c in zip(attributes["style"], attributes["material"], attributes["category"])
    ], np.float32)
    codes["lightness"] = lightness(attributes["color"]).astype(np.float32)
    return codes
