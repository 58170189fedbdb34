"""Pictures: contact sheets of items and of persons, with their labels underneath."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from modiste.io import atomic_path

# One colour per parse-mask label (background, hair, face, arms, torso, legs, feet).
MASK_COLORS = np.array([(255, 255, 255), (90, 50, 20), (250, 200, 150), (230, 120, 80), (60, 120, 220),
                        (60, 170, 90), (120, 60, 160)], np.uint8)


def contact_sheet(images: Sequence[np.ndarray], labels: Sequence[str], columns: int = 8, scale: int = 2,
                  label_lines: int = 3, title: str | None = None) -> Image.Image:
    """A grid of images (H, W, 3 uint8), each scaled up and captioned with wrapped text."""
    if len(images) != len(labels):
        raise ValueError(f"{len(images)} images but {len(labels)} labels")
    if not images:
        raise ValueError("nothing to draw")
    font = ImageFont.load_default(size=10)
    h, w = images[0].shape[:2]
    tile_w, tile_h = w * scale, h * scale
    line_h = 12
    cell_w, cell_h = tile_w + 8, tile_h + 6 + label_lines * line_h + 6
    top = 24 if title else 0
    rows = -(-len(images) // columns)
    sheet = Image.new("RGB", (columns * cell_w + 8, top + rows * cell_h + 4), "white")
    draw = ImageDraw.Draw(sheet)
    if title:
        draw.text((8, 6), title, fill=(20, 20, 20), font=ImageFont.load_default(size=14))
    chars = max(8, tile_w // 6)
    for k, (image, label) in enumerate(zip(images, labels)):
        x, y = 8 + (k % columns) * cell_w, top + 4 + (k // columns) * cell_h
        tile = Image.fromarray(np.ascontiguousarray(image)).resize((tile_w, tile_h), Image.Resampling.NEAREST)
        sheet.paste(tile, (x, y))
        draw.rectangle([x - 1, y - 1, x + tile_w, y + tile_h], outline=(220, 220, 220))
        lines = textwrap.wrap(label, chars)[:label_lines]
        for i, line in enumerate(lines):
            draw.text((x, y + tile_h + 4 + i * line_h), line, fill=(40, 40, 40), font=font)
    return sheet


def stack(images: Sequence[Image.Image]) -> Image.Image:
    """Pictures one above the other, left-aligned, on white."""
    width = max(im.width for im in images)
    out = Image.new("RGB", (width, sum(im.height for im in images)), "white")
    y = 0
    for im in images:
        out.paste(im, (0, y))
        y += im.height
    return out


def colorize_mask(mask: np.ndarray) -> np.ndarray:
    """A parse mask (H, W) of label indices as an RGB picture."""
    return MASK_COLORS[np.minimum(mask, len(MASK_COLORS) - 1)]


def save_png(image: Image.Image, path: str | Path) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")
    return path
