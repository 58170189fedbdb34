"""A category-conditional GAN on a world's 64x64 item pictures, after the DVBPR paper (Kang et al.,
ICDM 2017, section IV).

>>> gan = train_gan("data/world-default", "data/runs/gan-default")   # 30 minutes on 2 cores
>>> gan = CategoryGAN.load("data/runs/gan-default/model")
>>> images = gan.sample(8, "dress", seed=0)                        # uint8 (8, 64, 64, 3)

What the paper does, and what is kept:

- least-squares GAN loss (LSGAN: D pushes real to 1 and fake to 0, G pushes fake to 1);
- z of dimension d = 100, drawn uniformly from [-1, 1]^d, so that preference maximisation can
  search the same box;
- the generator goes from a linear layer through up-convolution blocks (batch norm, ReLU) to a
  tanh image; the category enters as a one-hot vector joined to z;
- the discriminator gets the category's one-hot joined at each level: as constant extra channels
  on every feature map and as extra inputs of the final linear layer.

What is changed, and why:

- Size. The paper's nets work on 224-pixel crops with a GPU. Here everything is shaped by 2 CPU
  cores, as `modiste.vision.encoder` is: no layer works at 64x64. The generator draws a 32x32
  map and turns it into 2x2 pixel patches with a pixel shuffle; the discriminator cuts the
  picture into 4x4 patches with its first (stride-4) convolution. The world's pictures are clean
  flat drawings, so this loses little.
- Stability tricks: spectral normalisation on every discriminator layer (no batch norm in D),
  a projection term in D's output (the inner product of a learned category embedding with D's
  features, Miyato & Koyama 2018) beside the paper's label concatenation, which makes D judge
  "is this a real *dress*" much harder than concatenation alone; an exponential moving average
  of the generator's weights (the average is what is saved and sampled, with its batch-norm
  statistics recomputed for the averaged weights, in eval mode).
- Pictures are mirrored left-right at random while training (a mirrored garment is a garment).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from modiste.io import atomic_path, write_json
from modiste.vision.common import to_uint8

GENERATOR, DISCRIMINATOR, META = "generator.safetensors", "discriminator.safetensors", "gan.json"


@dataclass
class GANConfig:
    """The networks.

    Attributes
    ----------
    z_dim : d, the length of z (uniform in [-1, 1]^d).
    g_width : channels of the generator's last (top) map; each map below it has twice as many.
    g_top : side of that last map, 16 (drawn as 4x4 pixel patches) or 32 (2x2 patches).
    d_width : channels of the discriminator's 16x16 map; the 8x8 and 4x4 maps have 2x and 4x.
    d_patch : channels of D's first layer, which reads 4x4x3 = 48 pixel values per patch: it must be
        at least 48, or whatever G draws in the layer's null space (pixel-level colour speckle) is
        invisible to D. A first run with 32 drew recognisable shapes covered in colour speckle.

    D's size is what decides the colours. A sweep at 200,000 pictures seen (on a GPU, the same
    networks): with d_width=32, d_patch=64 every garment came out in many hues at once (mean
    neighbour difference 1.56x the real pictures'); with 64 and 128, one hue per garment (1.16x).
    The wide D costs ~2.2x per step on the CPU, but with both of the 2 cores (135 pictures/s) it
    sees 240,000 pictures in 30 minutes, and there it beats the narrow D's 25 minutes on one
    thread: FID 347 against 422, outlines as sharp, one hue per garment more often. Hence the
    defaults; `--set d_width=32 --set d_patch=64` is the narrow D for a single busy core.
    projection : add the projection term (category embedding . features) to D's output.
    seed : seeds the initial weights.
    """

    z_dim: int = 100
    g_width: int = 48
    g_top: int = 16
    d_width: int = 64
    d_patch: int = 128
    projection: bool = True
    seed: int = 0


class Generator(nn.Module):
    """G(z, c): z (N, d) in [-1, 1] and category indices (N,) -> pictures (N, 3, 64, 64) in [-1, 1].

    With top=16: linear -> 4x4x4w -up-> 8x8x2w -up-> 16x16xw -conv3-> 16x16x48 -shuffle-> 64x64x3, tanh
    (top=32 adds one more up block and draws 2x2 patches).
    """

    def __init__(self, n_classes: int, z_dim: int = 100, width: int = 48, top: int = 16):
        super().__init__()
        if top not in (16, 32):
            raise ValueError(f"g_top must be 16 or 32, got {top}")
        self.n_classes, self.z_dim, self.width = n_classes, z_dim, width
        levels = 2 if top == 16 else 3
        self.base = width * 2 ** levels  # channels of the 4x4 map
        self.fc = nn.Sequential(nn.Linear(z_dim + n_classes, self.base * 16, bias=False),
                                nn.BatchNorm1d(self.base * 16), nn.ReLU(inplace=True))
        blocks = [_up(width * 2 ** (k + 1), width * 2 ** k) for k in reversed(range(levels))]
        patch = 64 // top
        self.up = nn.Sequential(*blocks, nn.Conv2d(width, 3 * patch * patch, 3, padding=1), nn.PixelShuffle(patch),
                                nn.Tanh())

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        onehot = F.one_hot(labels, self.n_classes).to(z.dtype)
        h = self.fc(torch.cat([z, onehot], 1)).view(len(z), self.base, 4, 4)
        return self.up(h)


class LabelConv(nn.Module):
    """A convolution over feature maps joined with the one-hot category as constant extra channels.

    Computed as conv(h, W_h) + conv(onehot map, W_c), the second term once per category and
    indexed: exactly the convolution of the concatenation (borders included), but the large
    convolution keeps a channel count CPUs like (42 or 74 input channels ran ~3x slower).
    """

    def __init__(self, cin: int, n_classes: int, cout: int, kernel: int, stride: int = 1, padding: int = 0):
        super().__init__()
        self.cin, self.n_classes, self.stride, self.padding = cin, n_classes, stride, padding
        self.conv = spectral_norm(nn.Conv2d(cin + n_classes, cout, kernel, stride=stride, padding=padding))

    def forward(self, h: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        w = self.conv.weight  # spectrally normalised, over all cin + n_classes input channels
        out = F.conv2d(h, w[:, :self.cin], self.conv.bias, self.stride, self.padding)
        maps = torch.eye(self.n_classes, dtype=h.dtype, device=h.device)[:, :, None, None]
        maps = maps.expand(-1, -1, h.shape[2], h.shape[3])
        per_class = F.conv2d(maps, w[:, self.cin:], None, self.stride, self.padding)  # (n_classes, cout, H', W')
        return out + per_class[labels]


class Discriminator(nn.Module):
    """D(x, c): pictures (N, 3, 64, 64) in [-1, 1] and category indices -> a realism score (N,).

    The category's one-hot is joined at each level: as extra channels of the 16x16, 8x8 and 4x4
    maps (`LabelConv`) and as extra inputs of the final linear layer (plus the optional projection
    term). Spectral norm on every layer, leaky ReLU, no batch norm.
    """

    def __init__(self, n_classes: int, width: int = 32, projection: bool = True, patch: int = 64):
        super().__init__()
        self.n_classes, self.width = n_classes, width
        w, c = width, n_classes
        self.patch = spectral_norm(nn.Conv2d(3, patch, 4, stride=4))  # 64 -> 16, 4x4 patches
        self.conv16 = LabelConv(patch, c, w, 3, padding=1)             # 16x16
        self.down8 = LabelConv(w, c, 2 * w, 4, stride=2, padding=1)  # 8x8
        self.down4 = LabelConv(2 * w, c, 4 * w, 4, stride=2, padding=1)  # 4x4
        self.fc = spectral_norm(nn.Linear(4 * w * 16 + c, 1))
        self.embed = spectral_norm(nn.Embedding(c, 4 * w * 16)) if projection else None

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        onehot = F.one_hot(labels, self.n_classes).to(x.dtype)
        act = lambda t: F.leaky_relu(t, 0.2)  # noqa: E731
        h = act(self.patch(x))
        h = act(self.conv16(h, labels))
        h = act(self.down8(h, labels))
        h = act(self.down4(h, labels)).flatten(1)
        out = self.fc(torch.cat([h, onehot], 1)).squeeze(1)
        if self.embed is not None:
            out = out + (self.embed(labels) * h).sum(1)
        return out


class CategoryGAN(nn.Module):
    """The generator (the weight average, used for sampling), the discriminator and the category names."""

    def __init__(self, categories: list[str], config: GANConfig | None = None):
        super().__init__()
        self.config = config or GANConfig()
        self.categories = [str(c) for c in categories]
        torch.manual_seed(self.config.seed)
        self.generator = Generator(len(self.categories), self.config.z_dim, self.config.g_width, self.config.g_top)
        self.discriminator = Discriminator(len(self.categories), self.config.d_width, self.config.projection,
                                           self.config.d_patch)
        self.history: dict = {}

    @property
    def z_dim(self) -> int:
        return self.config.z_dim

    def label(self, category: str) -> int:
        """The index of a category; a KeyError that lists the known ones otherwise."""
        if category not in self.categories:
            raise KeyError(f"unknown category {category!r}: the GAN knows {', '.join(self.categories)}")
        return self.categories.index(category)

    def labels(self, category: str | int, n: int) -> torch.Tensor:
        index = category if isinstance(category, int) else self.label(category)
        return torch.full((n,), index, dtype=torch.long)

    @staticmethod
    def random_z(n: int, z_dim: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """z uniform in [-1, 1]^d, as the GAN was trained."""
        return torch.rand(n, z_dim, generator=generator) * 2 - 1

    @torch.no_grad()
    def sample(self, n: int, category: str | int, seed: int = 0, z: torch.Tensor | None = None,
               batch_size: int = 256) -> np.ndarray:
        """n pictures of a category, uint8 (n, 64, 64, 3), from seeded z (or the given z)."""
        if z is None:
            z = self.random_z(n, self.z_dim, torch.Generator().manual_seed(seed))
        labels = self.labels(category, len(z))
        was = self.generator.training
        self.generator.eval()
        try:
            out = [to_uint8(self.generator(z[i:i + batch_size], labels[i:i + batch_size]))
                   for i in range(0, len(z), batch_size)]
        finally:
            self.generator.train(was)
        return np.concatenate(out) if out else np.zeros((0, 64, 64, 3), np.uint8)

    # ------------------------------------------------------------------ files

    def save(self, directory: str | Path) -> Path:
        """directory/{generator,discriminator}.safetensors and gan.json, replaced in one rename."""
        directory = Path(directory)
        with atomic_path(directory) as tmp:
            tmp.mkdir()
            save_file(_tensors(self.generator), str(tmp / GENERATOR))
            save_file(_tensors(self.discriminator), str(tmp / DISCRIMINATOR))
            write_json(tmp / META, {"config": asdict(self.config), "categories": self.categories,
                                    "history": self.history})
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> CategoryGAN:
        """Read a GAN written by `save`, in eval mode."""
        directory = Path(directory)
        if not (directory / META).is_file():
            raise FileNotFoundError(f"{directory} holds no saved GAN ({META} is missing)")
        meta = json.loads((directory / META).read_text(encoding="utf-8"))
        known = {f.name for f in fields(GANConfig)}
        gan = cls(meta["categories"], GANConfig(**{k: v for k, v in meta["config"].items() if k in known}))
        gan.generator.load_state_dict(load_file(str(directory / GENERATOR)))
        gan.discriminator.load_state_dict(load_file(str(directory / DISCRIMINATOR)))
        gan.history = meta.get("history") or {}
        return gan.eval()


def lsgan_d_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Least squares: D(real) -> 1, D(fake) -> 0."""
    return 0.5 * ((real - 1).square().mean() + fake.square().mean())


def lsgan_g_loss(fake: torch.Tensor) -> torch.Tensor:
    """Least squares: D(G(z)) -> 1."""
    return 0.5 * (fake - 1).square().mean()


@torch.no_grad()
def update_average(average: nn.Module, live: nn.Module, decay: float) -> None:
    """average <- decay * average + (1 - decay) * live, parameter by parameter."""
    for a, p in zip(average.parameters(), live.parameters()):
        a.lerp_(p, 1 - decay)


@torch.no_grad()
def recompute_batch_norm(generator: Generator, n_classes: int, z_dim: int, batches: int = 20, batch_size: int = 64,
                         seed: int = 0) -> None:
    """Batch-norm statistics of (averaged) weights: a cumulative average over random batches."""
    g = torch.Generator().manual_seed(seed)
    norms = [m for m in generator.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    generator.train()
    for _ in range(batches):
        generator(torch.rand(batch_size, z_dim, generator=g) * 2 - 1, torch.randint(0, n_classes, (batch_size,), generator=g))
    for m, momentum in zip(norms, saved):
        m.momentum = momentum
    generator.eval()


def _up(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


def _tensors(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
