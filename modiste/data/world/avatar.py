"""Front-view avatars of the synthetic world's persons, with their pixel parse masks.

`draw_avatar(body, rng)` returns ``(image, mask)``: a uint8 (128, 64, 3) picture of a person
standing on a white background, seen from the front, arms slightly away from the torso and
legs slightly apart, and a uint8 (128, 64) mask whose values index
`modiste.data.schema.MASK_LABELS` (0 background, 1 hair, 2 face, 3 arms, 4 torso, 5 legs,
6 feet).

How it is drawn. The shapes are rasterised once, at 1x, into an 'L' image of *parts* (finer
than the mask labels: tank top, skin at the neckline, shorts, bare leg, eyes, ...). The mask
is a lookup of the parts, and the image is a colour lookup of the same parts plus light
shading (a darker outline where parts meet or meet the background, a rounder darkening near
each part's left/right edge, and a soft vertical gradient). So the mask and the image align
pixel for pixel: mask == 0 exactly where the image is white, and no person pixel is white.

What the labels do:

- body_figure: the half-widths of the shoulders, waist and hips (and arm thickness).
  triangle / spoon: hips wider than shoulders (spoon: the hips sit higher); inverted_triangle:
  shoulders wider than hips; hourglass / top_hourglass / bottom_hourglass: a narrow waist
  with balanced / broader-top / broader-bottom ends; round / diamond: a waist as wide as or
  wider than the ends; rectangle: straight; athletic: straight with broad shoulders and
  thicker arms.
- height: the figure's height in pixels, feet always near the bottom edge; high ~ the whole
  canvas (118 px of 128), low ~ 85% of it (100 px), middle in between (109 px). Widths scale with it.
- skin_color: the RGB of face, neck, arms, bare legs (SKIN_RGB, with a small random shade).
- hair_style: the hair shape. short: a close cap; bob: a cap falling to the jaw; long:
  hair behind the head plus strands falling in front past the shoulders; ponytail: a close
  cap and a tail hanging to one side; bun: a close cap and a ball on top; curly: a large
  round mass with a bumpy outline.
- hair_color: the RGB of the hair (HAIR_RGB, with a small random shade).
- color_contrast: the tone of the neutral base outfit (a tank top and bike shorts): high
  gives a dark charcoal outfit, medium a mid grey, low a light beige-grey close to the skin.

Mask labels: "torso" is the tank top with the skin it leaves bare at the neckline and
shoulders; "legs" is the pelvis (the shorts) and both legs down to the ankles; "arms" the
bare arms and hands; "feet" the shoes; "face" the face and the neck; "hair" the hair.

Every random choice (a pixel of proportion, the shades, the ponytail's side, the curls)
comes from `rng`, so an avatar is a deterministic function of the labels and the generator.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from modiste.data.schema import AVATAR_HEIGHT, AVATAR_WIDTH, MASK_LABELS
from modiste.data.world.taxonomy import HAIR_RGB, SKIN_RGB

__all__ = ["draw_avatar"]

# Mask label values (index in MASK_LABELS).
_LABEL = {name: i for i, name in enumerate(MASK_LABELS)}
BACKGROUND, HAIR, FACE, ARMS, TORSO, LEGS, FEET = (
    _LABEL[n] for n in ("background", "hair", "face", "arms", "torso", "legs", "feet")
)

# Parts: the values drawn into the 'L' image. Each part has one mask label and one colour.
(_BG, _HAIR, _FACE, _NECK, _EYE, _MOUTH, _ARM, _TOP, _TOP_SKIN, _SHORTS, _LEG_SKIN, _SHOE, _BUN) = range(13)
_N_PARTS = 13
_PART_LABEL = np.array([BACKGROUND, HAIR, FACE, FACE, FACE, FACE, ARMS, TORSO, TORSO, LEGS, LEGS, FEET, HAIR],
                       dtype=np.uint8)
# Regions for the shading outline. Small facial features belong to the face so that they get
# no dark ring; neck, bare shoulders and arms are one stretch of skin; the bun is outlined
# against the rest of the hair.
_PART_REGION = np.array([0, 1, 2, 3, 2, 2, 3, 7, 3, 9, 10, 11, 12], dtype=np.uint8)

# Figures: half-widths in pixels (at full height) of shoulders, waist, hips; the height of the
# widest hip row as a fraction of the figure; the arm thickness factor.
_FIGURES: dict[str, tuple[float, float, float, float, float]] = {
    #                    shoulder waist  hip  hip_y  arm
    "triangle":          (11.0, 9.5, 14.5, 0.470, 1.0),
    "spoon":             (11.0, 9.0, 15.0, 0.445, 1.0),
    "round":             (12.0, 13.5, 12.5, 0.470, 1.15),
    "diamond":           (11.0, 13.0, 11.5, 0.470, 1.1),
    "bottom_hourglass":  (12.5, 8.5, 14.0, 0.470, 1.0),
    "inverted_triangle": (15.0, 10.5, 10.5, 0.470, 1.05),
    "athletic":          (14.5, 11.5, 12.0, 0.470, 1.25),
    "top_hourglass":     (14.0, 8.5, 12.5, 0.470, 1.0),
    "rectangle":         (12.0, 11.5, 12.0, 0.470, 1.0),
    "hourglass":         (13.5, 8.0, 13.5, 0.470, 1.0),
}
_HEIGHT_PX = {"high": 118, "middle": 109, "low": 100}
_FULL_HEIGHT = 118.0
_FEET_ROW = AVATAR_HEIGHT - 3  # the row the soles stand on

# Base outfit tone by colour contrast: (tank top RGB, shorts RGB).
_OUTFIT_RGB = {
    "high": ((68, 68, 74), (52, 52, 58)),
    "medium": ((150, 150, 154), (128, 128, 134)),
    "low": ((212, 204, 192), (196, 188, 176)),
}
_SHOE_RGB = (78, 74, 72)
_EYE_RGB = (40, 32, 30)
_MAX_RGB = 250.0  # no person pixel may be white: white means background


def draw_avatar(body: dict[str, str], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Return (image uint8 (128, 64, 3), mask uint8 (128, 64)) for a person with these body labels."""
    parts = _draw_parts(body, rng)
    mask = _PART_LABEL[parts]
    image = _colour(parts, body, rng)
    return image, mask


# --------------------------------------------------------------------------------------------
# Shapes


def _draw_parts(body: dict[str, str], rng: np.random.Generator) -> np.ndarray:
    """Rasterise the person into an array of part ids (uint8, AVATAR_HEIGHT x AVATAR_WIDTH)."""
    shoulder, waist, hip, hip_f, arm_k = _FIGURES[body["body_figure"]]
    h = _HEIGHT_PX[body["height"]] + int(rng.integers(-1, 2))  # figure height in px
    s = h / _FULL_HEIGHT  # widths scale with height
    bottom = _FEET_ROW + int(rng.integers(0, 2))
    top = bottom - h
    cx = AVATAR_WIDTH / 2 - 0.5 + float(rng.uniform(-0.6, 0.6))

    def jitter(v: float, amount: float = 0.5) -> float:
        return (v + float(rng.uniform(-amount, amount))) * s

    S, W, P = jitter(shoulder), jitter(waist), jitter(hip)  # shoulder, waist, hip half-widths

    def Y(f: float) -> float:  # a row at fraction f of the figure, from the top of the head
        return top + f * h

    # Landmark rows.
    chin = Y(0.13)
    sh_top, armpit, waist_y, hem_y = Y(0.168), Y(0.245), Y(0.36), Y(0.43)
    hip_y, crotch_y, shorts_y = Y(hip_f), Y(0.515), Y(0.60)
    knee_y, calf_y, ankle_y = Y(0.725), Y(0.80), Y(0.955)
    head_hw = 6.0 * s + float(rng.uniform(-0.3, 0.3))  # head half-width
    neck_hw = 2.6 * s

    img = Image.new("L", (AVATAR_WIDTH, AVATAR_HEIGHT), _BG)
    d = ImageDraw.Draw(img)

    def poly(points: list[tuple[float, float]], part: int) -> None:
        d.polygon(points, fill=part)

    def both_sides(points: list[tuple[float, float]], part: int) -> None:
        """Draw a polygon given as (dx outward from the centre, y), on the left and the right."""
        for sg in (-1.0, 1.0):
            poly([(cx + sg * dx, y) for dx, y in points], part)

    style = body["hair_style"]
    face_box = (cx - head_hw, top, cx + head_hw, chin)
    hair_side = 1.0 if rng.random() < 0.5 else -1.0  # ponytail side

    # 1. Hair behind the head and body.
    if style == "long":
        poly([(cx - head_hw - 1.5 * s, top + 4 * s), (cx + head_hw + 1.5 * s, top + 4 * s),
              (cx + head_hw + 2.0 * s, Y(0.24)), (cx - head_hw - 2.0 * s, Y(0.24))], _HAIR)
    elif style == "bob":
        d.ellipse((cx - head_hw - 1.6 * s, top - 1.0 * s, cx + head_hw + 1.6 * s, chin - 1 * s), fill=_HAIR)
        d.rectangle((cx - head_hw - 1.6 * s, top + 6 * s, cx + head_hw + 1.6 * s, chin + 0.5 * s), fill=_HAIR)
    elif style == "curly":
        _curly_mass(d, rng, cx, top, chin, head_hw, s)
    else:  # short, ponytail, bun: a rim of hair just around the top of the head
        d.ellipse((cx - head_hw - 1.0 * s, top - 0.9 * s, cx + head_hw + 1.0 * s, top + 0.7 * (chin - top)),
                  fill=_HAIR)

    # 2. Arms (bare) and hands, hanging a little away from the torso and clear of the hips.
    hem_hw = W + 0.6 * (P - W)  # half-width of the body at the tank top's hem
    aw = 2.1 * s * arm_k  # upper arm half-width
    wrist_hw = 1.5 * s * arm_k
    splay = float(rng.uniform(1.0, 2.2)) * s
    elbow_y, wrist_y = Y(0.355), Y(0.50)
    e_in = max(S + 0.8 * s, W + 2.8 * s, P - 2.0 * s) + 0.5 * splay  # inner edge of the elbow
    # Inner edge of the wrist: the forearm (a straight line from the elbow) must pass the hem
    # and the widest hip row, and the hand the thigh, with a pixel or more to spare.
    w_in = max(e_in + 0.5 * s, P + 3.0 * s) + 0.5 * splay
    for y_k, x_k in ((hem_y, hem_hw), (hip_y, P)):
        t = (y_k - elbow_y) / (wrist_y - elbow_y)
        if t > 0:
            w_in = max(w_in, e_in + (x_k + 3.0 * s - e_in) / t)
    ex, wx = e_in + aw * 0.9, w_in + wrist_hw  # elbow and wrist centres
    both_sides([(S - 1.8 * s, sh_top + 1.0 * s), (S + 0.4 * s, sh_top + 1.6 * s), (S + aw * 0.9, sh_top + 4.0 * s),
                (ex + aw * 0.9, elbow_y), (wx + wrist_hw, wrist_y), (w_in, wrist_y),
                (e_in, elbow_y), (S - 1.8 * s, armpit)], _ARM)
    for sg in (-1.0, 1.0):
        hx = cx + sg * (wx + 0.6 * s)
        d.ellipse((hx - 1.8 * s * arm_k, wrist_y - 1.0 * s, hx + 1.8 * s * arm_k, wrist_y + 5.0 * s), fill=_ARM)

    # 3. Legs (the shorts cover the pelvis and thighs; bare skin below, set after drawing).
    kx = 0.42 * P + 0.8 * s  # knee centre, legs slightly apart
    ax = kx + 1.3 * s  # ankle centre
    both_sides([(0.0, hem_y), (hem_hw, hem_y), (P, hip_y), (P - 0.4 * s, Y(0.53)), (kx + 3.1 * s, knee_y),
                (ax + 3.2 * s, calf_y), (ax + 1.8 * s, ankle_y), (ax - 1.8 * s, ankle_y), (ax - 2.0 * s, calf_y),
                (kx - 2.6 * s, knee_y), (1.0 * s, crotch_y + 1.0 * s), (0.0, crotch_y)], _SHORTS)

    # 4. Shoes, toes turned slightly outward.
    both_sides([(ax - 2.4 * s, ankle_y - 1.0), (ax + 2.3 * s, ankle_y - 1.0), (ax + 3.6 * s, bottom - 1.2),
                (ax + 3.0 * s, bottom), (ax - 2.4 * s, bottom)], _SHOE)

    # 5. Neck, then the tank top over its base, with bare skin at the neckline and shoulders.
    d.rectangle((cx - neck_hw, chin - 3 * s, cx + neck_hw, sh_top + 2), fill=_NECK)
    both_sides([(0.0, sh_top), (neck_hw + 0.3 * s, sh_top), (S - 1.2 * s, sh_top + 1.0 * s),
                (S, sh_top + 3.2 * s), (S - 2.0 * s, armpit), (W, waist_y), (hem_hw, hem_y), (0.0, hem_y)], _TOP)
    both_sides([(neck_hw + 2.4 * s, sh_top + 0.6 * s), (S - 1.1 * s, sh_top + 1.0 * s), (S + 0.2, sh_top + 3.2 * s),
                (S - 1.2 * s, armpit - 1.0 * s), (S - 2.8 * s, sh_top + 4.5 * s)], _TOP_SKIN)  # armholes
    poly([(cx - neck_hw - 1.0 * s, sh_top - 0.2), (cx + neck_hw + 1.0 * s, sh_top - 0.2),
          (cx + 1.2 * s, sh_top + 4.0 * s), (cx - 1.2 * s, sh_top + 4.0 * s)], _TOP_SKIN)  # scoop neck

    # 6. The head.
    d.ellipse(face_box, fill=_FACE)

    # 7. Hair in front: caps, fringe, strands, tail, bun.
    _front_hair(d, rng, style, cx, top, chin, head_hw, s, hair_side, sh_top)

    # 8. Eyes and mouth.
    eye_y, mouth_y = round(top + 0.56 * (chin - top)), round(top + 0.8 * (chin - top))
    for sg in (-1.0, 1.0):
        d.point((round(cx + sg * 2.3 * s), eye_y), fill=_EYE)
    d.line((round(cx - 0.8 * s), mouth_y, round(cx + 0.8 * s), mouth_y), fill=_MOUTH)

    parts = np.asarray(img).copy()
    # Bare legs below the shorts.
    below = np.arange(AVATAR_HEIGHT)[:, None] > shorts_y
    parts[(parts == _SHORTS) & below] = _LEG_SKIN
    return _despeckle(parts)


def _despeckle(parts: np.ndarray) -> np.ndarray:
    """Give lone pixels (unlike all four neighbours; eyes and mouth excepted) the part above them.

    Where polygons meet at 1x they leave single stray pixels, which the outline would turn
    into dark specks.
    """
    pad = np.pad(parts, 1, mode="edge")
    up = pad[:-2, 1:-1]
    lone = (up != parts) & (pad[2:, 1:-1] != parts) & (pad[1:-1, :-2] != parts) & (pad[1:-1, 2:] != parts)
    lone &= (parts != _EYE) & (parts != _MOUTH)
    parts[lone] = up[lone]
    return parts


def _curly_mass(d: ImageDraw.ImageDraw, rng: np.random.Generator, cx: float, top: float, chin: float,
                head_hw: float, s: float) -> None:
    """A large round mass of hair with a bumpy outline (curls on its rim)."""
    rx, ry = head_hw + 2.6 * s, (chin - top) * 0.55 + 1.0 * s
    cy = top + ry - 2.0 * s
    d.ellipse((cx - rx, cy - ry, cx + rx, cy + ry + 2.5 * s), fill=_HAIR)
    for a in np.linspace(-0.15 * np.pi, 1.15 * np.pi, 11):  # along the top and sides
        r = float(rng.uniform(1.5, 2.3)) * s
        px, py = cx + rx * np.cos(a), cy - ry * np.sin(a) + 0.8 * s
        d.ellipse((px - r, py - r, px + r, py + r), fill=_HAIR)


def _front_hair(d: ImageDraw.ImageDraw, rng: np.random.Generator, style: str, cx: float, top: float,
                chin: float, head_hw: float, s: float, side: float, sh_top: float) -> None:
    """Hair drawn over the face and shoulders."""
    head_h = chin - top
    if style in ("short", "ponytail", "bun"):
        # An arched hairline over the forehead, lower at the temples (the rest of the cap is
        # behind the face).
        d.chord((cx - head_hw, top - 0.5 * s, cx + head_hw, top + 0.45 * head_h), 180, 360, fill=_HAIR)
        for sg in (-1.0, 1.0):
            d.polygon([(cx + sg * head_hw, top + 0.1 * head_h), (cx + sg * head_hw, top + 0.5 * head_h),
                       (cx + sg * (head_hw - 2.2 * s), top + 0.2 * head_h)], fill=_HAIR)
    if style == "ponytail":
        # The tail falls from the back of the head, down one side of the neck.
        x0 = cx + side * (head_hw - 0.5 * s)
        pts = [(x0, top + 0.25 * head_h), (x0 + side * 3.0 * s, top + 0.35 * head_h),
               (x0 + side * 4.0 * s, top + 0.75 * head_h), (x0 + side * 3.0 * s, sh_top + 2.0 * s),
               (x0 + side * 1.4 * s, sh_top + 3.0 * s), (x0 + side * 1.2 * s, top + 0.7 * head_h),
               (x0, top + 0.45 * head_h)]
        d.polygon(pts, fill=_HAIR)
        d.ellipse((x0 - 1.5 * s, top + 0.2 * head_h, x0 + 1.5 * s, top + 0.45 * head_h), fill=_HAIR)  # band knot
    elif style == "bun":
        r = 3.2 * s + float(rng.uniform(-0.3, 0.3))
        by = top - 0.3 * r
        d.ellipse((cx - r, by - r, cx + r, by + r), fill=_BUN)
    elif style == "bob":
        # Fringe across the forehead and hair framing the cheeks.
        d.chord((cx - head_hw - 1.0 * s, top - 1.0 * s, cx + head_hw + 1.0 * s, top + 0.85 * head_h),
                180, 360, fill=_HAIR)
        for sg in (-1.0, 1.0):
            x_out, x_in = cx + sg * (head_hw + 1.6 * s), cx + sg * (head_hw - 1.3 * s)
            d.polygon([(x_in, top + 0.35 * head_h), (x_out, top + 0.35 * head_h), (x_out, chin + 0.5 * s),
                       (x_in, chin - 1.5 * s)], fill=_HAIR)
    elif style == "long":
        d.chord((cx - head_hw - 1.2 * s, top - 1.0 * s, cx + head_hw + 1.2 * s, top + 0.8 * head_h),
                180, 360, fill=_HAIR)
        # Strands framing the face and falling in front, past the shoulders.
        end = sh_top + 9.0 * s + float(rng.uniform(-1.0, 1.0))
        for sg in (-1.0, 1.0):
            x_in, x_out = cx + sg * (head_hw - 1.0 * s), cx + sg * (head_hw + 1.8 * s)
            d.polygon([(x_in, top + 0.35 * head_h), (x_out, top + 0.3 * head_h), (x_out + sg * 1.2 * s, end),
                       (x_out - sg * 2.2 * s, end + 1.0 * s), (x_in + sg * 0.5 * s, chin - 1.0 * s)], fill=_HAIR)
    elif style == "curly":
        # A row of curls along the hairline.
        for dx in np.linspace(-head_hw + 0.8 * s, head_hw - 0.8 * s, 4):
            r = float(rng.uniform(1.4, 1.9)) * s
            px, py = cx + dx, top + 0.22 * head_h + float(rng.uniform(-0.4, 0.4))
            d.ellipse((px - r, py - r, px + r, py + r), fill=_HAIR)


# --------------------------------------------------------------------------------------------
# Colours and shading


def _shade(rgb: tuple[int, int, int], rng: np.random.Generator, spread: float) -> np.ndarray:
    """A colour's brightness varied by a random factor around 1 (and a hair of hue)."""
    f = 1.0 + float(rng.uniform(-spread, spread))
    return np.asarray(rgb, dtype=np.float32) * f + rng.uniform(-2.0, 2.0, 3).astype(np.float32)


def _colour(parts: np.ndarray, body: dict[str, str], rng: np.random.Generator) -> np.ndarray:
    """Colour the parts and shade them; background stays exactly white."""
    skin = _shade(SKIN_RGB[body["skin_color"]], rng, 0.04)
    hair = _shade(HAIR_RGB[body["hair_color"]], rng, 0.06)
    top_rgb, shorts_rgb = _OUTFIT_RGB[body["color_contrast"]]
    tone = 1.0 + float(rng.uniform(-0.04, 0.04))  # one tone for the whole outfit
    top_c = np.asarray(top_rgb, np.float32) * tone
    shorts_c = np.asarray(shorts_rgb, np.float32) * tone

    lut = np.zeros((_N_PARTS, 3), np.float32)
    lut[_HAIR] = hair
    lut[_BUN] = hair * 0.95
    lut[_FACE] = skin
    lut[_NECK] = skin * 0.93  # the neck sits a little in the chin's shadow
    lut[_EYE] = _EYE_RGB
    lut[_MOUTH] = skin * np.array([0.86, 0.68, 0.68], np.float32)
    lut[_ARM] = skin * 0.97
    lut[_TOP] = top_c
    lut[_TOP_SKIN] = skin * 0.98
    lut[_SHORTS] = shorts_c
    lut[_LEG_SKIN] = skin * 0.95
    lut[_SHOE] = _shade(_SHOE_RGB, rng, 0.08)

    rgb = lut[parts]  # (H, W, 3) float
    person = parts != _BG
    region = _PART_REGION[parts]

    # Shading factor per pixel: outline where regions meet, rounder near left/right edges.
    f = np.ones(parts.shape, np.float32)
    edge = np.zeros(parts.shape, bool)
    edge[1:] |= region[1:] != region[:-1]
    edge[:-1] |= region[:-1] != region[1:]
    edge[:, 1:] |= region[:, 1:] != region[:, :-1]
    edge[:, :-1] |= region[:, :-1] != region[:, 1:]
    near = np.zeros(parts.shape, bool)  # two columns from a side edge
    near[:, 2:] |= region[:, 2:] != region[:, :-2]
    near[:, :-2] |= region[:, :-2] != region[:, 2:]
    f[near] = 0.93
    f[edge] = 0.80
    # A soft light from above.
    f *= np.linspace(1.03, 0.95, AVATAR_HEIGHT, dtype=np.float32)[:, None]

    rgb *= f[:, :, None]
    np.clip(rgb, 0.0, _MAX_RGB, out=rgb)
    image = rgb.astype(np.uint8)
    image[~person] = 255
    return image
