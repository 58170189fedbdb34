"""Draw one item of the synthetic world as a 64x64 product picture on a white background.

Every attribute is visible:

- category and silhouette: the outline (a t-shirt, a shirt with collar and placket, a sweater
  with ribbed bands, a coat with lapels, trousers, skirts, dresses, shoes, bags, hats/scarves/belts);
- design: a length, sleeve, neckline or size detail of that outline;
- color: the fill, around the palette's base shade;
- pattern: stripes, checks, dots or small flowers in a contrasting colour;
- material: the surface (flat cotton, diagonal denim twill, vertical knit ribs, glossy leather
  highlight, silk sheen);
- style: a mark (formal gold buttons, sporty side stripes, a street emblem, boho fringe; casual
  is plain).

Besides the named attributes each item has continuous "look" parameters (shade lightness,
saturation, hue shift, width and pattern scale) that are visible in the picture but not in the
caption: users have a hidden taste for them, which only a model that looks at pixels can learn.

Drawing happens at 2x and is reduced to 64x64 for smooth edges.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from modiste.data.schema import IMAGE_SIZE
from modiste.data.world.taxonomy import PALETTE

S = 2 * IMAGE_SIZE  # drawing resolution
LOOK_DIM = 5  # lightness, saturation, hue, width, pattern scale


@dataclass(frozen=True)
class ItemSpec:
    category: str
    color: str
    pattern: str
    material: str
    silhouette: str
    design: str
    style: str
    look: tuple[float, ...]  # LOOK_DIM values, each roughly N(0, 1)


# ---------------------------------------------------------------------------- colour


def shade(color: str, look: tuple[float, ...]) -> np.ndarray:
    """The item's base RGB (floats in 0..1): the palette colour moved by the item's look."""
    r, g, b = (c / 255 for c in PALETTE[color])
    h, l, s = colorsys.rgb_to_hls(r, g, b)
    l = float(np.clip(l + 0.06 * look[0], 0.06, 0.95))
    s = float(np.clip(s * (1 + 0.18 * look[1]), 0, 1))
    h = (h + 0.012 * look[2]) % 1.0
    return np.array(colorsys.hls_to_rgb(h, l, s))


def contrast_color(base: np.ndarray) -> np.ndarray:
    """The second colour of a pattern: near-white on dark shades, near-black on light ones."""
    lum = float(base @ np.array([0.299, 0.587, 0.114]))
    return np.array([0.96, 0.95, 0.92]) if lum < 0.55 else np.array([0.12, 0.12, 0.16])


# ---------------------------------------------------------------------------- surfaces

_YY, _XX = np.mgrid[0:S, 0:S].astype(np.float32)


def pattern_fill(pattern: str, base: np.ndarray, second: np.ndarray, scale: float, rng) -> np.ndarray:
    """An (S, S, 3) fill of the whole canvas in the pattern; the garment mask cuts it out later."""
    period = 14.0 * (1 + 0.25 * scale)
    phase = rng.uniform(0, period)
    if pattern == "solid":
        on = np.zeros((S, S), bool)
    elif pattern == "stripes":
        on = ((_YY + phase) % period) < period * 0.4
    elif pattern == "checks":
        a = ((_YY + phase) % period) < period * 0.35
        b = ((_XX + phase) % period) < period * 0.35
        on = a | b
    elif pattern == "dots":
        cy = ((_YY + phase) % period) - period / 2
        cx = ((_XX + phase) % period) - period / 2
        on = cy**2 + cx**2 < (period * 0.18) ** 2
    elif pattern == "floral":
        on = _flowers(period * 1.9, phase, rng)
    else:
        raise ValueError(f"unknown pattern {pattern!r}")
    fill = np.empty((S, S, 3), np.float32)
    fill[:] = base
    fill[on] = second
    if pattern == "floral":  # a small centre of the base colour's complement makes flowers read as flowers
        fill[_flower_centres(period * 1.9, phase)] = (1 - base) * 0.6 + 0.2
    return fill


def _flowers(period: float, phase: float, rng) -> np.ndarray:
    cy = ((_YY + phase) % period) - period / 2
    cx = ((_XX + phase * 0.5) % period) - period / 2
    r = np.sqrt(cy**2 + cx**2)
    theta = np.arctan2(cy, cx) + rng.uniform(0, np.pi)
    petal_radius = period * 0.33 * (0.55 + 0.45 * np.abs(np.cos(2.5 * theta)))  # five petals
    return r < petal_radius


def _flower_centres(period: float, phase: float) -> np.ndarray:
    cy = ((_YY + phase) % period) - period / 2
    cx = ((_XX + phase * 0.5) % period) - period / 2
    return cy**2 + cx**2 < (period * 0.09) ** 2


def material_surface(material: str, centre: tuple[float, float], rng) -> tuple[np.ndarray, np.ndarray]:
    """(multiplier, added light), each (S, S): fill * multiplier + light shows the material.

    The added light keeps every material visible on dark colours, where a multiplier alone
    vanishes. Periods are at least 6 drawing pixels, so the texture survives the reduction to 64.
    """
    if material == "cotton":  # matte, with a faint plain-weave grid
        grid = (((_XX % 8) < 2) | ((_YY % 8) < 2)).astype(np.float32)
        return 1.0 - 0.08 * grid, 0.03 * grid
    if material == "denim":  # diagonal twill
        twill = (((_XX + _YY) % 6) < 2).astype(np.float32)
        return 1.0 - 0.22 * twill, 0.07 * (1 - twill)
    if material == "knit":  # vertical ribs
        rib = np.abs(np.sin(_XX * np.pi / 10)).astype(np.float32)
        return 0.78 + 0.22 * rib, 0.06 * rib
    if material == "leather":  # a darker surface with a glossy highlight on the item itself
        cy, cx = centre[0] * S + rng.uniform(-6, 6), centre[1] * S + rng.uniform(-6, 6)
        d = np.sqrt((_YY - cy) ** 2 + (_XX - cx) ** 2) / S
        return np.full((S, S), 0.8, np.float32), (0.5 * np.exp(-(d / 0.09) ** 2)).astype(np.float32)
    if material == "silk":  # narrow bright bands of sheen
        phase = rng.uniform(0, np.pi)
        band = np.sin((_XX * 0.5 + _YY) / S * np.pi * 2.2 + phase) ** 8
        return np.ones((S, S), np.float32), (0.3 * band).astype(np.float32)
    raise ValueError(f"unknown material {material!r}")


# ---------------------------------------------------------------------------- outlines

def _p(x: float, y: float) -> tuple[float, float]:
    return (x * S, y * S)


def _mirror(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    return [(S - x, y) for x, y in points]


def _upper_body(spec: ItemSpec, rng, width: float, hem: float, sleeves: str, neck: str) -> list[list]:
    """Polygons of a garment for the upper body: the body, then two sleeves (each a list of points)."""
    c = 0.5
    w = width
    sw = w + 0.06  # shoulders
    top = 0.16 + rng.uniform(-0.01, 0.01)
    flare = {"oversized": 1.05, "regular": 1.0, "fitted": 0.92}.get(spec.silhouette, 1.0)
    neck_w = 0.075
    neck_depth = {"v-neck": 0.16, "turtleneck": 0.0}.get(neck, 0.05)
    body = [_p(c - neck_w, top), _p(c - sw, top + 0.04), _p(c - w, top + 0.2), _p(c - w * flare, hem),
            _p(c + w * flare, hem), _p(c + w, top + 0.2), _p(c + sw, top + 0.04), _p(c + neck_w, top)]
    # The neckline: a dip between the two neck points.
    if neck_depth > 0:
        dip = [_p(c + neck_w * 0.6, top + neck_depth * 0.6), _p(c, top + neck_depth), _p(c - neck_w * 0.6, top + neck_depth * 0.6)]
        body = body + dip
    polys = [body]
    if sleeves != "sleeveless":
        reach = {"short sleeve": 0.19, "long sleeve": 0.53}[sleeves]
        spread = 0.07 if sleeves == "short sleeve" else 0.1
        left = [_p(c - sw, top + 0.04), _p(c - w, top + 0.2), _p(c - w - spread, top + 0.04 + reach + 0.02),
                _p(c - sw - spread - 0.07, top + 0.04 + reach)]
        polys += [left, _mirror(left)]
    return polys


def outline(spec: ItemSpec, rng) -> tuple[list[list], dict]:
    """The polygons of the item and where its details go (hem line, centre, side lines)."""
    cat, sil, des = spec.category, spec.silhouette, spec.design
    width_look = 0.012 * spec.look[3]
    j = lambda a=0.01: rng.uniform(-a, a)  # noqa: E731  small shape jitter
    if cat in ("top", "shirt", "sweater", "outerwear"):
        width = {"fitted": 0.17, "regular": 0.2, "oversized": 0.24}[sil] + width_look + j()
        hem = {"cropped": 0.6, "hip length": 0.76, "long": 0.94}.get(des, 0.78) + j(0.015)
        sleeves = des if cat in ("top", "shirt") else "long sleeve"
        neck = des if cat == "sweater" else ("v-neck" if cat == "outerwear" else "crew neck")
        polys = _upper_body(spec, rng, width, hem, sleeves, neck)
        return polys, {"centre": (0.5, 0.45), "hem": hem, "half_width": width, "top": 0.2}
    if cat == "dress":
        width = 0.14 + width_look + j()
        hem_w = {"sheath": 0.17, "a-line": 0.27, "flared": 0.36}[sil] + j()
        waist = 0.44 + j()
        hem = 0.9 + j(0.02)
        bodice = _upper_body(spec, rng, width, waist + 0.02, des, "crew neck")
        skirt = [_p(0.5 - width, waist), _p(0.5 + width, waist), _p(0.5 + hem_w, hem), _p(0.5 - hem_w, hem)]
        return bodice + [skirt], {"centre": (0.5, 0.6), "hem": hem, "half_width": hem_w * 0.8, "top": 0.2}
    if cat == "trousers":
        waist_w = 0.19 + width_look + j()
        length = {"shorts": 0.42, "cropped": 0.72, "full length": 0.92}[des] + j(0.015)
        leg_w = {"slim": 0.085, "straight": 0.11, "wide": 0.16}[sil] + j(0.008)
        crotch = 0.36
        left = [_p(0.5 - waist_w, 0.1), _p(0.5, 0.1), _p(0.5, crotch), _p(0.5 - 0.01, length),
                _p(0.5 - 0.01 - 2 * leg_w, length), _p(0.5 - waist_w - 0.005, 0.3)]
        if des == "shorts":  # short legs flare out by the silhouette's leg width
            left[3], left[4] = _p(0.5 - 0.01, length), _p(0.5 - waist_w - 0.04 - (leg_w - 0.085) * 1.5, length)
        return [left, _mirror(left)], {"centre": (0.5, 0.25), "hem": length, "half_width": waist_w, "top": 0.1,
                                       "band": (0.1, 0.15)}
    if cat == "skirt":
        waist_w = 0.16 + width_look + j()
        length = {"mini": 0.45, "knee length": 0.66, "maxi": 0.92}[des] + j(0.015)
        hem_w = {"pencil": waist_w + 0.02, "a-line": waist_w + 0.12 + (length - 0.45) * 0.15,
                 "pleated": waist_w + 0.16}[sil]
        body = [_p(0.5 - waist_w, 0.12), _p(0.5 + waist_w, 0.12), _p(0.5 + hem_w, length), _p(0.5 - hem_w, length)]
        return [body], {"centre": (0.5, (0.12 + length) / 2), "hem": length, "half_width": waist_w, "top": 0.12,
                        "band": (0.12, 0.17)}
    if cat == "shoes":
        return _shoes(spec, rng), {"centre": (0.3, 0.6), "hem": 0.74, "half_width": 0.1, "top": 0.5}
    if cat == "bag":
        size = {"small": 0.62, "medium": 0.78, "large": 0.95}[des] + j(0.02) + width_look
        return _bag(sil, size, rng), {"centre": (0.5, 0.62), "hem": 0.5 + 0.32 * size, "half_width": 0.3 * size,
                                      "top": 0.62 - 0.2 * size}
    if cat == "accessory":
        return _accessory(sil, des, rng, width_look)
    raise ValueError(f"unknown category {cat!r}")


def _shoes(spec: ItemSpec, rng) -> list[list]:
    """One shoe in side view, toe to the right; the design sets the shaft (or heel) height."""
    shaft = {"low": 0.0, "mid": 0.12, "high": 0.26}[spec.design]
    j = rng.uniform(-0.015, 0.015)
    sole = 0.74
    if spec.silhouette == "sneaker":
        top = 0.5 - shaft * 0.7 + j
        shoe = [_p(0.1, sole), _p(0.9, sole), _p(0.9, 0.66), _p(0.76, 0.6), _p(0.52, 0.55), _p(0.44, top),
                _p(0.14, top + 0.02), _p(0.1, 0.62)]
    elif spec.silhouette == "boot":
        top = 0.42 - shaft + j
        shoe = [_p(0.14, sole), _p(0.86, sole), _p(0.86, 0.66), _p(0.62, 0.58), _p(0.46, 0.56), _p(0.44, top),
                _p(0.17, top), _p(0.14, 0.6)]
    else:  # heel: a pump; the design is the heel's height
        h = 0.05 + shaft * 0.55
        base = 0.8
        shoe = [_p(0.14, base - h - 0.14 + j), _p(0.32, base - h - 0.1), _p(0.56, base - 0.1), _p(0.88, base - 0.06),
                _p(0.9, base), _p(0.56, base), _p(0.25, base - h), _p(0.21, base - h), _p(0.2, base), _p(0.16, base),
                _p(0.14, base - h)]
    return [shoe]


def _bag(silhouette: str, size: float, rng) -> list[list]:
    h, w, cy = 0.32 * size, 0.3 * size, 0.62
    if silhouette == "tote":
        body = [_p(0.5 - w * 0.85, cy - h * 0.6), _p(0.5 + w * 0.85, cy - h * 0.6), _p(0.5 + w, cy + h),
                _p(0.5 - w, cy + h)]
        handle = [_p(0.5 - w * 0.5, cy - h * 0.6), _p(0.5 - w * 0.4, cy - h * 1.5), _p(0.5 + w * 0.4, cy - h * 1.5),
                  _p(0.5 + w * 0.5, cy - h * 0.6), _p(0.5 + w * 0.35, cy - h * 0.6), _p(0.5 + w * 0.3, cy - h * 1.3),
                  _p(0.5 - w * 0.3, cy - h * 1.3), _p(0.5 - w * 0.35, cy - h * 0.6)]
        return [handle, body]
    if silhouette == "clutch":
        body = [_p(0.5 - w * 1.2, cy - h * 0.4), _p(0.5 + w * 1.2, cy - h * 0.4), _p(0.5 + w * 1.2, cy + h * 0.6),
                _p(0.5 - w * 1.2, cy + h * 0.6)]
        flap = [_p(0.5 - w * 1.2, cy - h * 0.4), _p(0.5 + w * 1.2, cy - h * 0.4), _p(0.5, cy + h * 0.2)]
        return [body, flap]
    # backpack: a tall rounded body, a front pocket and a top loop
    body = [_p(0.5 - w * 0.8, cy - h * 1.1), _p(0.5 - w * 0.4, cy - h * 1.35), _p(0.5 + w * 0.4, cy - h * 1.35),
            _p(0.5 + w * 0.8, cy - h * 1.1), _p(0.5 + w * 0.85, cy + h), _p(0.5 - w * 0.85, cy + h)]
    pocket = [_p(0.5 - w * 0.55, cy + h * 0.05), _p(0.5 + w * 0.55, cy + h * 0.05), _p(0.5 + w * 0.55, cy + h * 0.8),
              _p(0.5 - w * 0.55, cy + h * 0.8)]
    return [body, pocket]


def _accessory(silhouette: str, design: str, rng, width_look: float):
    width = {"narrow": 0.6, "regular": 1.0, "wide": 1.45}[design] * (1 + width_look * 4)
    j = rng.uniform(-0.015, 0.015)
    if silhouette == "hat":
        brim = 0.1 + 0.2 * width
        crown = [_p(0.32, 0.56), _p(0.34, 0.3 + j), _p(0.66, 0.3 + j), _p(0.68, 0.56)]
        brim_poly = [_p(0.5 - brim, 0.56), _p(0.5 + brim, 0.56), _p(0.5 + brim * 0.9, 0.64), _p(0.5 - brim * 0.9, 0.64)]
        return [crown, brim_poly], {"centre": (0.5, 0.45), "hem": 0.64, "half_width": 0.17, "top": 0.3}
    if silhouette == "scarf":
        half = 0.035 + 0.045 * width
        loop = [_p(0.3, 0.2 + j), _p(0.7, 0.2 + j), _p(0.7, 0.2 + 2 * half + j), _p(0.3, 0.2 + 2 * half + j)]
        tail = [_p(0.5 - half, 0.2), _p(0.5 + half, 0.2), _p(0.56 + half, 0.85), _p(0.56 - half, 0.85)]
        return [loop, tail], {"centre": (0.55, 0.55), "hem": 0.85, "half_width": half, "top": 0.25}
    half = 0.025 + 0.035 * width  # belt
    band = [_p(0.08, 0.5 - half + j), _p(0.92, 0.5 - half + j), _p(0.92, 0.5 + half + j), _p(0.08, 0.5 + half + j)]
    return [band], {"centre": (0.5, 0.5), "hem": 0.5 + half, "half_width": 0.4, "top": 0.5 - half, "buckle": half}


# ---------------------------------------------------------------------------- the picture

def draw_item(spec: ItemSpec, rng: np.random.Generator) -> np.ndarray:
    """Draw an item; returns uint8 (64, 64, 3)."""
    base = shade(spec.color, spec.look)
    second = contrast_color(base)
    polys, where = outline(spec, rng)

    mask_img = Image.new("L", (S, S), 0)
    md = ImageDraw.Draw(mask_img)
    for poly in polys:
        md.polygon(poly, fill=255)
    mask = np.asarray(mask_img) > 0

    rows, cols = np.nonzero(mask)
    where["hem"] = (rows.max() + 1) / S  # the item's true lowest edge (for fringe)
    fill = pattern_fill(spec.pattern, base, second, spec.look[4], rng)
    multiplier, light = material_surface(spec.material, (rows.mean() / S, cols.mean() / S), rng)
    fill = fill * multiplier[..., None] + light[..., None]
    canvas = np.ones((S, S, 3), np.float32)
    canvas[mask] = fill[mask]
    img = Image.fromarray((np.clip(canvas, 0, 1) * 255).astype(np.uint8))
    d = ImageDraw.Draw(img)

    edge = tuple(int(v * 255 * 0.55) for v in base)
    for poly in polys:
        d.polygon(poly, outline=edge, width=2)
    _category_details(d, spec, where, base, edge)
    _style_mark(d, spec, where, base, rng)
    return np.asarray(img.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BOX))


def _rgb(c: np.ndarray) -> tuple[int, int, int]:
    return tuple(int(v) for v in np.clip(np.asarray(c) * 255, 0, 255))


def _category_details(d: ImageDraw.ImageDraw, spec: ItemSpec, where: dict, base, edge) -> None:
    cat = spec.category
    darker = _rgb(base * 0.7)
    if cat == "shirt":  # pointed collar and a buttoned placket
        d.polygon([_p(0.43, 0.15), _p(0.5, 0.22), _p(0.45, 0.26)], fill=darker)
        d.polygon([_p(0.57, 0.15), _p(0.5, 0.22), _p(0.55, 0.26)], fill=darker)
        d.line([_p(0.5, 0.22), _p(0.5, where["hem"])], fill=edge, width=2)
        for y in np.linspace(0.3, where["hem"] - 0.06, 4):
            d.ellipse([*_p(0.51, y), *_p(0.535, y + 0.025)], fill=edge)
    elif cat == "sweater":  # ribbed cuffs and hem band
        hw = where["half_width"]
        d.rectangle([*_p(0.5 - hw * 0.95, where["hem"] - 0.06), *_p(0.5 + hw * 0.95, where["hem"])], fill=darker)
        if spec.design == "turtleneck":
            d.rectangle([*_p(0.43, 0.07), *_p(0.57, 0.18)], fill=darker)
    elif cat == "outerwear":  # open front and lapels
        d.line([_p(0.5, 0.32), _p(0.5, where["hem"])], fill=edge, width=3)
        d.polygon([_p(0.425, 0.16), _p(0.5, 0.32), _p(0.4, 0.3)], fill=darker)
        d.polygon([_p(0.575, 0.16), _p(0.5, 0.32), _p(0.6, 0.3)], fill=darker)
    elif cat in ("trousers", "skirt"):  # waistband
        y0, y1 = where["band"]
        hw = where["half_width"]
        d.rectangle([*_p(0.5 - hw, y0), *_p(0.5 + hw, y1)], fill=darker)
        if spec.silhouette == "pleated":
            for x in np.linspace(-0.75, 0.75, 6):
                d.line([_p(0.5 + x * hw, y1), _p(0.5 + x * (hw + 0.16), where["hem"])], fill=edge, width=2)
    elif cat == "shoes":  # a light rubber sole under sneakers and boots, laces on sneakers
        if spec.silhouette != "heel":
            d.rectangle([*_p(0.08, 0.74), *_p(0.92, 0.8)], fill=(235, 235, 235), outline=edge)
        if spec.silhouette == "sneaker":
            for x in (0.5, 0.57, 0.64):
                d.line([_p(x, 0.56), _p(x + 0.05, 0.6)], fill=(245, 245, 245), width=2)
    elif cat == "accessory" and spec.silhouette == "belt":  # a metal buckle
        h = where["buckle"]
        d.rectangle([*_p(0.2, 0.5 - h * 1.5), *_p(0.3, 0.5 + h * 1.5)], outline=(190, 190, 195), width=3)


def _style_mark(d: ImageDraw.ImageDraw, spec: ItemSpec, where: dict, base, rng) -> None:
    cx, cy = where["centre"]
    hw, hem, top = where["half_width"], where["hem"], where["top"]
    if spec.style == "formal":  # gold buttons or clasp (silver on warm colours, where gold would hide)
        warm = spec.color in ("red", "orange", "yellow", "pink", "beige", "brown", "burgundy")
        metal, rim = ((215, 215, 225), (60, 60, 70)) if warm else ((212, 175, 55), (120, 95, 20))
        for k in range(3):
            y = cy - 0.06 + k * 0.07
            d.ellipse([*_p(cx - 0.026, y), *_p(cx + 0.026, y + 0.052)], fill=metal, outline=rim, width=2)
    elif spec.style == "sporty":  # two contrast stripes down both sides
        stripe = _rgb(contrast_color(base))
        for side in (-1, 1):
            x = cx + side * hw * 0.75
            d.line([_p(x, top + 0.02), _p(x, hem - 0.02)], fill=stripe, width=3)
            d.line([_p(x + side * 0.035, top + 0.02), _p(x + side * 0.035, hem - 0.02)], fill=stripe, width=3)
    elif spec.style == "street":  # a bold emblem: a star in a contrasting colour
        r = 0.085
        star = []
        for k in range(10):
            a = -np.pi / 2 + k * np.pi / 5
            rr = r if k % 2 == 0 else r * 0.45
            star.append(_p(cx + rr * np.cos(a), cy + rr * np.sin(a)))
        emblem = (255, 60, 60) if spec.color not in ("red", "pink", "orange", "burgundy") else (250, 250, 250)
        d.polygon(star, fill=emblem, outline=(20, 20, 20))
    elif spec.style == "boho":  # fringe hanging from the hem
        fringe = _rgb(base * 0.8)
        for x in np.linspace(cx - hw * 0.9, cx + hw * 0.9, 9):
            d.line([_p(x, hem), _p(x + rng.uniform(-0.01, 0.01), min(hem + 0.07, 0.99))], fill=fringe, width=2)
