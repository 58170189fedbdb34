"""Preference maximisation (DVBPR, section IV-B): design new items that a given user would like.

For a user u and a category c, search the GAN's latent box for

    z* = argmax_{z in [-1, 1]^d}  theta_u . Phi(G(z, c))  -  eta * (D(G(z, c), c) - 1)^2

where theta_u . Phi(image) is the trained DVBPR's preference score and the second term keeps
the design where the discriminator believes pictures of category c are (LSGAN's "real" is 1).
As in the paper, z is optimised by Adam with learning rate 0.05 and clipped to the box after
every step. Here many designs are optimised at once (a batch of z for several users and
categories), from several random starts each; the `n` with the best objective are returned.

>>> gan, rec = CategoryGAN.load("runs/gan/model"), load_model("runs/dvbpr/best")
>>> designs = maximise_preference(gan, rec, user_row, "dress", n=8)
>>> designs.images, designs.scores          # uint8 (1, 8, 64, 64, 3), preference scores (1, 8)

"Tailoring" (`tailor`) starts from a catalogue item instead: it first finds the z whose picture is
closest to the item (the encoder's opponent-colour MSE, from many random starts), then runs
preference maximisation from that z and records the picture at chosen steps.

DVBPR's item CNN takes uint8 (N, 64, 64, 3) and scales it to [-1, 1] itself
(`modiste.vision.common.to_unit_range`); the generator's tanh output is already in that range
and layout (N, 3, 64, 64), so Phi is applied to it directly (`ItemCNN.features`/`head`), which
keeps the whole objective differentiable. Reported scores are recomputed on the uint8 pictures,
as a user would see them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from modiste.design.gan import CategoryGAN
from modiste.vision.common import to_uint8, to_unit_range
from modiste.vision.encoder import OPPONENT


@dataclass
class PMConfig:
    """steps, lr: Adam on z (the paper: lr 0.05); eta: weight of the realism term; restarts: random
    starts per returned design (the best `n` of n * restarts are kept); seed: the starts."""

    steps: int = 100
    lr: float = 0.05
    eta: float = 1.0
    restarts: int = 3
    seed: int = 0


@dataclass
class Designs:
    """Designs for M (user, category) pairs, n each.

    images: uint8 (M, n, 64, 64, 3); scores: theta_u . Phi(image) on the uint8 pictures (M, n);
    realism: (D(image, c) - 1)^2 (M, n), lower is more realistic; objective: scores - eta * realism;
    start_scores: the preference score of the same z before optimisation; z: (M, n, d).
    """

    images: np.ndarray
    scores: np.ndarray
    realism: np.ndarray
    objective: np.ndarray
    start_scores: np.ndarray
    z: np.ndarray
    steps: list[dict] = field(default_factory=list)


def check_dvbpr(rec) -> None:
    if getattr(rec, "name", None) != "dvbpr" or not hasattr(rec, "cnn"):
        raise ValueError(f"preference maximisation needs a DVBPR model (theta_u . Phi(image)); "
                         f"got {getattr(rec, 'name', type(rec).__name__)!r}")


def phi(rec, x: torch.Tensor) -> torch.Tensor:
    """DVBPR's item embedding Phi of pictures already in [-1, 1], (N, 3, 64, 64); differentiable."""
    return rec.cnn.head(rec.cnn.features(x))


@torch.no_grad()
def preference_scores(rec, users: np.ndarray, images: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """theta_u . Phi(image) for uint8 pictures (N, 64, 64, 3) and one user row per picture (N,)."""
    check_dvbpr(rec)
    users = torch.as_tensor(np.asarray(users), dtype=torch.long)
    out = []
    for i in range(0, len(images), batch_size):
        x = to_unit_range(torch.from_numpy(np.array(images[i:i + batch_size])))
        out.append((rec.user_vectors[users[i:i + batch_size]] * phi(rec, x)).sum(-1))
    return torch.cat(out).numpy() if out else np.zeros(0, np.float32)


@torch.no_grad()
def realism(gan: CategoryGAN, images: np.ndarray, labels: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """(D(image, c) - 1)^2 for uint8 pictures and category indices."""
    out = []
    for i in range(0, len(images), batch_size):
        x = to_unit_range(torch.from_numpy(np.array(images[i:i + batch_size])))
        c = torch.as_tensor(labels[i:i + batch_size], dtype=torch.long)
        out.append((gan.discriminator(x, c) - 1).square())
    return torch.cat(out).numpy() if out else np.zeros(0, np.float32)


def _frozen(gan: CategoryGAN, rec) -> None:
    gan.eval()
    rec.eval()
    for p in list(gan.parameters()) + list(rec.parameters()):
        p.requires_grad_(False)


def _optimise(gan: CategoryGAN, rec, z: torch.Tensor, users: torch.Tensor, labels: torch.Tensor, config: PMConfig,
              record: set[int] | None = None) -> tuple[torch.Tensor, list[dict]]:
    """Adam on z (clipped to the box after every step); returns the final z and recorded steps."""
    z = z.clone().requires_grad_(True)
    opt = torch.optim.Adam([z], lr=config.lr)
    theta = rec.user_vectors[users]
    steps = []
    for step in range(config.steps + 1):
        x = gan.generator(z, labels)
        score = (theta * phi(rec, x)).sum(-1)
        real = (gan.discriminator(x, labels) - 1).square()
        objective = score - config.eta * real
        if record is not None and step in record:
            steps.append({"step": step, "images": to_uint8(x.detach()), "score": score.detach().numpy().copy(),
                          "realism": real.detach().numpy().copy()})
        if step == config.steps:
            break
        opt.zero_grad(set_to_none=True)
        (-objective.sum()).backward()  # each z is its own problem: the sum's gradient is each one's
        opt.step()
        with torch.no_grad():
            z.clamp_(-1, 1)
    return z.detach(), steps


def maximise_preference(gan: CategoryGAN, rec, users, categories, n: int = 8, config: PMConfig | None = None,
                        batch_pairs: int = 16) -> Designs:
    """Designs for (user row, category) pairs: `users` and `categories` are equal-length sequences
    (or a single user row and a single category name). Returns `Designs` with M = number of pairs.

    Every (user, category) pair gets n * restarts random starts; all are optimised together in
    batches of `batch_pairs` pairs, and the n with the best final objective are kept, best first.
    """
    check_dvbpr(rec)
    config = config or PMConfig()
    if n < 1 or config.restarts < 1:
        raise ValueError(f"n and restarts must be at least 1 (got n={n}, restarts={config.restarts})")
    users = np.atleast_1d(np.asarray(users, dtype=np.int64))
    categories = [categories] if isinstance(categories, str) else list(categories)
    if len(categories) == 1 and len(users) > 1:
        categories = categories * len(users)
    if len(categories) != len(users):
        raise ValueError(f"{len(users)} users but {len(categories)} categories")
    if users.min(initial=0) < 0 or users.max(initial=0) >= rec.n_users:
        raise KeyError(f"user rows must be in [0, {rec.n_users})")
    labels = np.array([gan.label(c) for c in categories], dtype=np.int64)
    _frozen(gan, rec)
    k = n * config.restarts
    gen = torch.Generator().manual_seed(config.seed)
    z0 = CategoryGAN.random_z(len(users) * k, gan.z_dim, gen).view(len(users), k, gan.z_dim)
    out = {key: [] for key in ("images", "scores", "realism", "objective", "start", "z")}
    for s in range(0, len(users), batch_pairs):
        u = torch.from_numpy(users[s:s + batch_pairs]).repeat_interleave(k)
        c = torch.from_numpy(labels[s:s + batch_pairs]).repeat_interleave(k)
        start = z0[s:s + batch_pairs].reshape(-1, gan.z_dim)
        z, _ = _optimise(gan, rec, start, u, c, config)
        with torch.no_grad():
            images = to_uint8(gan.generator(z, c))
            first = to_uint8(gan.generator(start, c))
        score = preference_scores(rec, u.numpy(), images)
        real = realism(gan, images, c.numpy())
        objective = score - config.eta * real
        start_score = preference_scores(rec, u.numpy(), first)
        m = len(u) // k
        order = np.argsort(-objective.reshape(m, k), axis=1, kind="stable")[:, :n]
        pick = lambda a: np.take_along_axis(a.reshape(m, k, *a.shape[1:]),  # noqa: E731
                                            order.reshape(m, n, *([1] * (a.ndim - 1))), axis=1)
        out["images"].append(pick(images))
        out["scores"].append(pick(score))
        out["realism"].append(pick(real))
        out["objective"].append(pick(objective))
        out["start"].append(pick(start_score))
        out["z"].append(pick(z.numpy()))
    cat = {key: np.concatenate(v) for key, v in out.items()}
    return Designs(cat["images"], cat["scores"], cat["realism"], cat["objective"], cat["start"], cat["z"])


def fit_z(gan: CategoryGAN, image: np.ndarray, category: str, steps: int = 200, restarts: int = 16, lr: float = 0.05,
          seed: int = 0) -> tuple[np.ndarray, float]:
    """The z in [-1, 1]^d whose picture G(z, c) is closest to `image` (uint8 (64, 64, 3)): Adam from
    `restarts` random starts on the encoder's opponent-colour MSE, the best kept. Returns (z, loss)."""
    _frozen_gan(gan)
    target = to_unit_range(torch.from_numpy(np.array(image[None]))).expand(restarts, -1, -1, -1)
    labels = gan.labels(category, restarts)
    z = CategoryGAN.random_z(restarts, gan.z_dim, torch.Generator().manual_seed(seed)).requires_grad_(True)
    opt = torch.optim.Adam([z], lr=lr)
    for _ in range(steps):
        loss = _per_image_loss(gan.generator(z, labels), target)
        opt.zero_grad(set_to_none=True)
        loss.sum().backward()
        opt.step()
        with torch.no_grad():
            z.clamp_(-1, 1)
    with torch.no_grad():
        loss = _per_image_loss(gan.generator(z, labels), target)
    best = int(loss.argmin())
    return z[best].detach().numpy(), float(loss[best])


def tailor(gan: CategoryGAN, rec, user: int, image: np.ndarray, category: str, config: PMConfig | None = None,
           record=(0, 5, 10, 20, 40, 70, 100), fit_steps: int = 200, fit_restarts: int = 16) -> dict:
    """Tailor a catalogue item to a user: fit z to the item's picture, then maximise the user's
    preference from there. Returns {"fit_loss", "steps": [{"step", "image", "score", "realism"}],
    "item_score"}: the picture and its scores at each recorded step (step 0 is the fitted item)."""
    check_dvbpr(rec)
    config = config or PMConfig()
    z, fit_loss = fit_z(gan, image, category, steps=fit_steps, restarts=fit_restarts, seed=config.seed)
    _frozen(gan, rec)
    u = torch.tensor([user])
    c = gan.labels(category, 1)
    record = {s for s in record if s <= config.steps} | {0, config.steps}
    _, steps = _optimise(gan, rec, torch.from_numpy(z[None]), u, c, config, record=record)
    rows = []
    for s in steps:
        img = s["images"]
        rows.append({"step": s["step"], "image": img[0], "score": float(preference_scores(rec, [user], img)[0]),
                     "realism": float(realism(gan, img, c.numpy())[0])})
    return {"fit_loss": fit_loss, "steps": rows, "item_score": float(preference_scores(rec, [user], image[None])[0])}


def _frozen_gan(gan: CategoryGAN) -> None:
    gan.eval()
    for p in gan.parameters():
        p.requires_grad_(False)


def _per_image_loss(x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The encoder's reconstruction loss (opponent-colour MSE), one value per picture."""
    return torch.einsum("ij,njhw->nihw", OPPONENT.to(x.dtype), x - target).square().mean((1, 2, 3))
