"""What every image network of modiste shares: the pixel convention, devices and CPU threads.

Pictures travel as uint8 (N, 64, 64, 3), exactly as a dataset stores them; each network turns
them into float (N, 3, 64, 64) in [-1, 1] itself, with `to_unit_range`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch


def to_unit_range(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> float (N, 3, H, W) in [-1, 1]."""
    return images.permute(0, 3, 1, 2).float() / 127.5 - 1.0


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """float (N, 3, H, W) in [-1, 1] -> uint8 (N, H, W, 3), the inverse of `to_unit_range`."""
    return ((x.permute(0, 2, 3, 1).float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu().numpy()


def check_images(images: np.ndarray) -> np.ndarray:
    """Refuse anything but uint8 (N, 64, 64, 3), with a message that says what came instead."""
    if images.ndim != 4 or images.shape[1:] != (64, 64, 3) or images.dtype != np.uint8:
        raise ValueError(f"images must be uint8 (N, 64, 64, 3), got {images.dtype} {tuple(images.shape)}")
    return images


def resolve_device(name: str) -> torch.device:
    """'cpu', 'cuda' or 'auto' (cuda when there is one)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run a block with `n` torch CPU threads (None: leave them), then restore the previous number.

    On 2 cores, two threads collapse when another process competes for them: jobs that may share
    the machine ask for one.
    """
    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if n and torch.get_num_threads() != before:
            torch.set_num_threads(before)
