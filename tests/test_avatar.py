"""Tests of the synthetic persons' avatars and parse masks (modiste.data.world.avatar)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from modiste.data.schema import AVATAR_HEIGHT, AVATAR_WIDTH, MASK_LABELS
from modiste.data.world.avatar import draw_avatar
from modiste.data.world.taxonomy import BODY_VALUES

HAIR, FACE, ARMS, TORSO, LEGS, FEET = (MASK_LABELS.index(n) for n in ("hair", "face", "arms", "torso", "legs", "feet"))

BASE = {
    "body_figure": "rectangle", "skin_color": "medium", "hair_style": "short", "hair_color": "brown",
    "height": "middle", "color_contrast": "medium",
}


def person(seed: int = 0, **labels: str) -> tuple[np.ndarray, np.ndarray]:
    return draw_avatar({**BASE, **labels}, np.random.default_rng(seed))


def figure_rows(mask: np.ndarray) -> int:
    rows = np.nonzero(mask.any(axis=1))[0]
    return int(rows[-1] - rows[0] + 1)


def shoulder_to_hip(mask: np.ndarray) -> float:
    """Torso width near the top of the torso over the widest body row at the hips (arms excluded)."""
    torso_rows = np.nonzero((mask == TORSO).any(axis=1))[0]
    shoulders = max(int((mask[y] == TORSO).sum()) for y in torso_rows[:6])
    legs_top = int(np.nonzero((mask == LEGS).any(axis=1))[0][0])
    body = (mask == TORSO) | (mask == LEGS)
    hips = max(int(body[y].sum()) for y in range(legs_top, legs_top + 8))
    return shoulders / hips


def test_shapes_and_dtypes():
    image, mask = person()
    assert image.shape == (AVATAR_HEIGHT, AVATAR_WIDTH, 3) and image.dtype == np.uint8
    assert mask.shape == (AVATAR_HEIGHT, AVATAR_WIDTH) and mask.dtype == np.uint8


def test_deterministic_given_the_generator():
    a_img, a_mask = person(seed=7)
    b_img, b_mask = person(seed=7)
    assert np.array_equal(a_img, b_img) and np.array_equal(a_mask, b_mask)
    c_img, _ = person(seed=8)
    assert not np.array_equal(a_img, c_img)  # same labels, another person


@pytest.mark.parametrize("figure", BODY_VALUES["body_figure"])
def test_mask_labels_and_white_background(figure):
    # Every hair style and height with this figure (and every skin, hair colour and contrast along the way).
    others = itertools.cycle(itertools.product(BODY_VALUES["skin_color"], BODY_VALUES["hair_color"],
                                               BODY_VALUES["color_contrast"]))
    rng = np.random.default_rng(1)
    for style, height in itertools.product(BODY_VALUES["hair_style"], BODY_VALUES["height"]):
        skin, hair, contrast = next(others)
        body = {"body_figure": figure, "skin_color": skin, "hair_style": style, "hair_color": hair,
                "height": height, "color_contrast": contrast}
        image, mask = draw_avatar(body, rng)
        assert mask.max() < len(MASK_LABELS)
        assert set(np.unique(mask)) == set(range(len(MASK_LABELS))), body
        white = (image == 255).all(axis=-1)
        assert np.array_equal(white, mask == 0), body
        # The person stands clear of the canvas edges, feet near the bottom.
        assert not mask[:, 0].any() and not mask[:, -1].any() and not mask[0].any()
        assert np.nonzero(mask.any(axis=1))[0][-1] >= AVATAR_HEIGHT - 4
        assert (mask == FEET).any(axis=1).nonzero()[0][-1] >= AVATAR_HEIGHT - 4


def test_high_person_is_taller_than_low():
    for seed in range(5):
        high = figure_rows(person(seed, height="high")[1])
        middle = figure_rows(person(seed, height="middle")[1])
        low = figure_rows(person(seed, height="low")[1])
        assert high > middle > low
        assert high >= 0.85 * AVATAR_HEIGHT and low <= 0.9 * high


def test_inverted_triangle_has_broader_shoulders_than_triangle():
    for seed in range(5):
        inv = shoulder_to_hip(person(seed, body_figure="inverted_triangle")[1])
        tri = shoulder_to_hip(person(seed, body_figure="triangle")[1])
        assert inv > tri + 0.15, (inv, tri)


def test_hourglass_waist_narrower_than_round():
    def waist_to_hip(mask):
        torso = np.nonzero((mask == TORSO).any(axis=1))[0]
        waist = min(int((mask[y] == TORSO).sum()) for y in torso[len(torso) // 2: -2])
        return waist / max(int((mask[y] == TORSO).sum()) for y in torso[:6])

    for seed in range(5):
        assert waist_to_hip(person(seed, body_figure="hourglass")[1]) < waist_to_hip(person(seed, body_figure="round")[1])


def test_dark_skin_is_darker_than_fair_in_the_face():
    for seed in range(5):
        (dark, dmask), (fair, fmask) = person(seed, skin_color="dark"), person(seed, skin_color="fair")
        assert dark[dmask == FACE].mean() + 60 < fair[fmask == FACE].mean()


def test_hair_colour_and_style():
    black, bmask = person(0, hair_color="black")
    blonde, lmask = person(0, hair_color="blonde")
    assert black[bmask == HAIR].mean() + 80 < blonde[lmask == HAIR].mean()
    # Long hair falls past the shoulders; short hair stays on the head.
    _, long_mask = person(0, hair_style="long")
    _, short_mask = person(0, hair_style="short")
    torso_top = np.nonzero((long_mask == TORSO).any(axis=1))[0][0]
    assert (long_mask[torso_top + 3:] == HAIR).any()
    assert not (short_mask[torso_top:] == HAIR).any()
    # A ponytail hangs to one side: the hair is lopsided.
    _, pony = person(0, hair_style="ponytail")
    xs = np.nonzero(pony == HAIR)[1]
    face_x = np.nonzero(pony == FACE)[1].mean()
    assert abs((xs - face_x).mean()) > 1.0


def test_color_contrast_sets_the_outfit_tone():
    for seed in range(3):
        high, hmask = person(seed, color_contrast="high")
        low, lmask = person(seed, color_contrast="low")
        assert high[hmask == TORSO].mean() + 60 < low[lmask == TORSO].mean()


def test_arms_hang_away_from_the_hips():
    # Below the elbows no arm pixel touches the torso or legs.
    for figure in BODY_VALUES["body_figure"]:
        _, mask = person(0, body_figure=figure)
        arms, body = mask == ARMS, (mask == TORSO) | (mask == LEGS)
        rows = np.nonzero(arms.any(axis=1))[0]
        lower = slice(rows[0] + (rows[-1] - rows[0]) // 2, None)
        a, b = arms[lower], body[lower]
        assert not ((a[:, 1:] & b[:, :-1]) | (a[:, :-1] & b[:, 1:])).any(), figure
