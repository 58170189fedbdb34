"""The vocabulary of the synthetic world: categories, attribute values, colours and body labels.

Every attribute value here is drawn so that it can be seen in the item's 64x64 picture
(see `modiste.data.world.draw`).
"""

from __future__ import annotations

# Outfit slots. An outfit takes one item per slot of a template.
UPPER, LOWER, FULL, OUTER, FEET, CARRY, EXTRA = "upper", "lower", "full", "outer", "feet", "carry", "extra"

CATEGORIES = ("top", "shirt", "sweater", "outerwear", "trousers", "skirt", "dress", "shoes", "bag", "accessory")
SLOT = {
    "top": UPPER, "shirt": UPPER, "sweater": UPPER, "outerwear": OUTER, "trousers": LOWER, "skirt": LOWER,
    "dress": FULL, "shoes": FEET, "bag": CARRY, "accessory": EXTRA,
}
# Outfits have four items, like Polyvore-U and iFashion: one per slot of one of these templates.
OUTFIT_TEMPLATES = (
    (UPPER, LOWER, FEET, CARRY),
    (UPPER, LOWER, FEET, EXTRA),
    (OUTER, UPPER, LOWER, FEET),
    (FULL, OUTER, FEET, CARRY),
    (FULL, FEET, CARRY, EXTRA),
)
# Share of the catalogue in each category (garments are more numerous than accessories).
CATEGORY_SHARE = {
    "top": 0.14, "shirt": 0.10, "sweater": 0.09, "outerwear": 0.09, "trousers": 0.13, "skirt": 0.08,
    "dress": 0.10, "shoes": 0.11, "bag": 0.08, "accessory": 0.08,
}

# Named colours and their base RGB; every item's shade varies around its base.
PALETTE = {
    "black": (30, 30, 32), "white": (238, 238, 232), "grey": (140, 140, 145), "beige": (215, 195, 160),
    "brown": (120, 78, 45), "navy": (32, 45, 95), "blue": (40, 95, 200), "light blue": (140, 190, 235),
    "green": (40, 140, 70), "olive": (110, 115, 50), "red": (205, 35, 40), "burgundy": (120, 25, 45),
    "pink": (240, 150, 180), "orange": (240, 130, 30), "yellow": (240, 210, 50), "purple": (120, 60, 160),
}
COLORS = tuple(PALETTE)
NEUTRALS = frozenset({"black", "white", "grey", "beige", "navy"})

PATTERNS = ("solid", "stripes", "checks", "dots", "floral")
MATERIALS = ("cotton", "denim", "knit", "leather", "silk")
STYLES = ("casual", "formal", "sporty", "street", "boho")

# Silhouette (shape) and design (a length, sleeve, neckline or size detail) depend on the category.
SILHOUETTES = {
    "top": ("fitted", "regular", "oversized"),
    "shirt": ("fitted", "regular", "oversized"),
    "sweater": ("fitted", "regular", "oversized"),
    "outerwear": ("fitted", "regular", "oversized"),
    "trousers": ("slim", "straight", "wide"),
    "skirt": ("pencil", "a-line", "pleated"),
    "dress": ("sheath", "a-line", "flared"),
    "shoes": ("sneaker", "boot", "heel"),
    "bag": ("tote", "clutch", "backpack"),
    "accessory": ("hat", "scarf", "belt"),
}
DESIGNS = {
    "top": ("sleeveless", "short sleeve", "long sleeve"),
    "shirt": ("short sleeve", "long sleeve"),
    "sweater": ("crew neck", "v-neck", "turtleneck"),
    "outerwear": ("cropped", "hip length", "long"),
    "trousers": ("shorts", "cropped", "full length"),
    "skirt": ("mini", "knee length", "maxi"),
    "dress": ("sleeveless", "short sleeve", "long sleeve"),
    "shoes": ("low", "mid", "high"),
    "bag": ("small", "medium", "large"),
    "accessory": ("narrow", "regular", "wide"),
}

# The attribute columns of items.parquet, in caption order.
ATTRIBUTES = ("color", "pattern", "material", "silhouette", "design", "style")

# How formal each style and material reads (used by the compatibility rules).
STYLE_FORMALITY = {"casual": 0.0, "formal": 1.0, "sporty": -0.6, "street": -0.3, "boho": 0.0}
MATERIAL_FORMALITY = {"cotton": 0.0, "denim": -0.4, "knit": -0.1, "leather": 0.3, "silk": 0.5}
CATEGORY_FORMALITY = {
    "top": -0.2, "shirt": 0.4, "sweater": 0.0, "outerwear": 0.2, "trousers": 0.1, "skirt": 0.1,
    "dress": 0.3, "shoes": 0.0, "bag": 0.1, "accessory": 0.0,
}

# Body labels (the Outfit4You label set used by FCN).
BODY_VALUES = {
    "body_figure": ("triangle", "round", "diamond", "spoon", "bottom_hourglass", "inverted_triangle", "athletic",
                    "top_hourglass", "rectangle", "hourglass"),
    "skin_color": ("fair", "light", "medium", "olive", "brown", "dark"),
    "hair_style": ("short", "bob", "long", "ponytail", "bun", "curly"),
    "hair_color": ("black", "brown", "blonde", "red", "grey"),
    "height": ("high", "middle", "low"),
    "color_contrast": ("high", "medium", "low"),
}
SKIN_RGB = {
    "fair": (246, 221, 204), "light": (234, 192, 160), "medium": (205, 152, 112), "olive": (180, 140, 95),
    "brown": (140, 95, 62), "dark": (88, 58, 40),
}
HAIR_RGB = {"black": (25, 22, 20), "brown": (100, 62, 35), "blonde": (225, 195, 120), "red": (170, 70, 35),
            "grey": (165, 165, 165)}
