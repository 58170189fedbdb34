"""The dual-diffusion transformer (after DualFashion): one network that generates an item's picture
and its attribute text together, for a category, a user's taste and the rest of an outfit.

Streams. The image stream reads the picture's latent (`modiste.vision.latent`: a 16x16x4 code of
the 64x64 picture, from an autoencoder modiste trains per dataset) as 2x2 patches: 64 tokens of 16
numbers. (Phase one read 8x8 pixel patches, 192 numbers a token; a 128-wide token could not keep
the picture apart from the noise, and the velocity error stayed at 0.45-0.82 at every time.) The text
stream reads one token per attribute (`ATTRIBUTES`: colour, pattern, material, silhouette, design,
style) followed by the condition tokens. Every block is an MMDiT block (SD3): each stream has its
own projections and MLP, and one attention runs over both streams, so that picture and words read
each other at every layer. Each stream's own timestep, plus the category, modulates its half of
every block (adaLN-Zero, as DiT).

Losses (`DualDiT.loss`):

- image: rectified flow on the latent. x_t = (1 - t) x_0 + t noise; the network predicts the velocity
  noise - x_0; t ~ logit-normal(0, 1), SD3's choice, which spends the steps on the middle times.
- text: masked (absorbing) discrete diffusion, MDLM. Each attribute token is replaced by [MASK]
  with probability t, t ~ U(0, 1); the network predicts the masked values; their cross-entropy is
  weighted by 1/t, MDLM's continuous-time bound for the linear schedule.

The two times are drawn independently, so the one network learns the joint (both noisy), text to
image (text clean, t_text = 0), image to text (t_image = 0) and everything between.

Conditions, each a group of tokens in the text stream, each dropped at random in training (`drop`:
preference all "unknown", history zeros, no outfit), which is what classifier-free guidance needs:

- preference: per attribute, the value the user chose most often in the category (DualFashion's
  structured preference), or "unknown";
- history: the mean image feature (modiste's own encoder) of the user's items in the category
  (DiFashion's history condition);
- outfit: the image features of the other items of the outfit with their categories, one token
  each (DiFashion and DualFashion mix the outfit into the denoising; here it is attended to).

Sampling (`DualDiT.sample`) integrates the image's flow with diffusers' FlowMatchEulerDiscreteScheduler
and unmasks the text MDLM-style on the same time grid, both streams together; either stream can be
given instead (captioning, text to image). Guidance is nested, as InstructPix2Pix's: the velocity
and logits without conditions, plus per condition its scale times what adding it changes.

`DualConfig(text_stream=False)` is the image-only baseline on the same backbone (DiFashion-like):
its words are always all [MASK], it has no text loss and no preference condition, so it learns
the picture from the category, the history and the outfit alone.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from modiste.design.dual_decoder import WordsCritic, WordsDecoder, reconstruction_loss
from modiste.io import atomic_path, write_json
from modiste.vision.latent import LatentCodec

ATTRIBUTES = ("color", "pattern", "material", "silhouette", "design", "style")
CONDITIONS = ("description", "preference", "history", "outfit")
# What sampling can guide: the conditions, and the words written or given so far (the picture only).
GUIDED = CONDITIONS + ("words",)
# The parameters that touch only the text stream (with `.text.`, each block's text half): what the
# text-aug stage fine-tunes. The rest (the image stream, the category shared by both) stays frozen.
TEXT_BRANCH = ("values.", "slot", "preference_values.", "features.", "outfit_category.", "kind", "no_outfit",
               "description", "time_text.", "text_final.")
WEIGHTS, CONFIG = "model.safetensors", "model.json"


@dataclass
class DualConfig:
    """dim, depth, heads: the transformer; patch: the side of the latent's patches; feature_dim: the
    image features of the history and outfit conditions; description_dim: the sentence embedding of
    the description condition; outfit_items: at most this many other items of an outfit;
    text_weight: lambda, the text loss's weight; drop: the chance of dropping each condition in
    training; text_stream: False for the image-only baseline."""

    dim: int = 128
    patch: int = 2
    depth: int = 6
    heads: int = 4
    feature_dim: int = 256
    description_dim: int = 384
    outfit_items: int = 3
    # lambda: with 1.0 the text's gradients crowd out the picture's (on the GPU, 45 s of pretraining at
    # 192 wide: image loss 0.605 against 0.411 for the image-only model); at 0.05 the image loss
    # matches image-only (0.404) and the text loss is as low as at 1.0 (0.79 against 0.80).
    text_weight: float = 0.05
    drop: float = 0.15
    text_stream: bool = True
    seed: int = 0


@dataclass
class Conditions:
    """A batch's conditions. `category` (N,) is always there; the rest may be None (absent for all):
    description (N, description_dim) the sentence embedding of a description in words (the text-aug
    stage teaches the model to read it), a zero row where a row has none; preference (N, 6) value ids (`TextVocabulary.unknown` where not known); history (N, feature_dim);
    outfit (N, L, feature_dim) features and outfit_category (N, L), -1 where there is no item."""

    category: torch.Tensor
    description: torch.Tensor | None = None
    preference: torch.Tensor | None = None
    history: torch.Tensor | None = None
    outfit: torch.Tensor | None = None
    outfit_category: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.category)

    def without(self, *names: str) -> Conditions:
        return Conditions(**{f.name: None if f.name in names else getattr(self, f.name) for f in fields(self)})

    def to(self, device: torch.device | str) -> Conditions:
        return Conditions(**{f.name: None if getattr(self, f.name) is None else getattr(self, f.name).to(device)
                             for f in fields(self)})


class TextVocabulary:
    """The attribute values as token ids: one table per attribute, each with its values, then
    "unknown" (for preferences) and [MASK]. Values are the dataset's own strings, sorted.
    `by_category` lists the values each category's items have (a shirt has sleeves, not heels):
    the model only ever writes those."""

    def __init__(self, values: dict[str, list[str]], categories: list[str],
                 by_category: dict[str, dict[str, list[str]]] | None = None):
        missing = [a for a in ATTRIBUTES if a not in values]
        if missing:
            raise ValueError(f"the dual model needs every item attribute; missing: {', '.join(missing)}")
        self.values = {a: sorted(str(v) for v in values[a]) for a in ATTRIBUTES}
        self.categories = list(categories)
        self.by_category = by_category or {c: self.values for c in self.categories}

    @classmethod
    def from_items(cls, items) -> TextVocabulary:
        """The vocabulary of an items table (pandas) with a category column and the attribute columns."""
        values = {a: sorted({str(v) for v in items[a].dropna()}) for a in ATTRIBUTES if a in items}
        by_category = {str(c): {a: sorted({str(v) for v in group[a].dropna()}) for a in values}
                       for c, group in items.groupby("category")}
        return cls(values, sorted(by_category), by_category)

    def allowed(self) -> torch.Tensor:
        """(n_categories, 6, widest table) True where a category's items have the value."""
        out = torch.zeros(len(self.categories), len(ATTRIBUTES), max(self.size(a) for a in ATTRIBUTES), dtype=torch.bool)
        for c, category in enumerate(self.categories):
            for k, a in enumerate(ATTRIBUTES):
                for v in self.by_category[category][a]:
                    out[c, k, self.values[a].index(v)] = True
        return out

    def size(self, attribute: str) -> int:
        return len(self.values[attribute]) + 2  # + unknown + [MASK]

    def unknown(self, attribute: str) -> int:
        return len(self.values[attribute])

    def mask(self, attribute: str) -> int:
        return len(self.values[attribute]) + 1

    @property
    def masks(self) -> torch.Tensor:
        return torch.tensor([self.mask(a) for a in ATTRIBUTES])

    @property
    def unknowns(self) -> torch.Tensor:
        return torch.tensor([self.unknown(a) for a in ATTRIBUTES])

    def encode(self, rows: list[dict[str, str]]) -> torch.Tensor:
        """[{attribute: value}] -> (N, 6) ids; an absent or unseen value is "unknown"."""
        index = {a: {v: k for k, v in enumerate(self.values[a])} for a in ATTRIBUTES}
        return torch.tensor([[index[a].get(str(r.get(a)), self.unknown(a)) for a in ATTRIBUTES] for r in rows])

    def decode(self, ids: torch.Tensor) -> list[dict[str, str | None]]:
        return [{a: (self.values[a][int(i)] if int(i) < len(self.values[a]) else None)
                 for a, i in zip(ATTRIBUTES, row)} for row in ids]

    def caption(self, ids: torch.Tensor, categories) -> list[str]:
        """Words from ids: "red striped cotton regular long sleeve casual shirt"."""
        out = []
        for row, category in zip(self.decode(ids), categories):
            words = [v for v in row.values() if v is not None and v != "solid"]
            out.append(" ".join(words + [self.categories[int(category)]]))
        return out

    def to_json(self) -> dict:
        return {"values": self.values, "categories": self.categories, "by_category": self.by_category}


class _Modulation(nn.Module):
    """adaLN-Zero: from the conditioning vector, shift, scale and gate for attention and MLP."""

    def __init__(self, dim: int):
        super().__init__()
        self.linear = nn.Linear(dim, 6 * dim)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, c: torch.Tensor) -> list[torch.Tensor]:
        return [x.unsqueeze(1) for x in self.linear(F.silu(c)).chunk(6, dim=-1)]


class _Stream(nn.Module):
    """One stream's half of an MMDiT block."""

    def __init__(self, dim: int):
        super().__init__()
        self.modulation = _Modulation(dim)
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(approximate="tanh"), nn.Linear(4 * dim, dim))


class _Block(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.image, self.text = _Stream(dim), _Stream(dim)

    def forward(self, x: torch.Tensor, y: torch.Tensor, c_image: torch.Tensor, c_text: torch.Tensor,
                text_pad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n, li = x.shape[:2]
        mods, qkvs = [], []
        for h, s, c in ((x, self.image, c_image), (y, self.text, c_text)):
            shift1, scale1, gate1, shift2, scale2, gate2 = s.modulation(c)
            mods.append((gate1, shift2, scale2, gate2))
            qkvs.append(s.qkv(s.norm1(h) * (1 + scale1) + shift1))
        q, k, v = (t.reshape(n, -1, self.heads, t.shape[-1] // self.heads).transpose(1, 2)
                   for t in torch.cat(qkvs, dim=1).chunk(3, dim=-1))
        keep = torch.cat([torch.ones(n, li, dtype=torch.bool, device=x.device), ~text_pad], dim=1)
        attn = F.scaled_dot_product_attention(q, k, v, attn_mask=keep[:, None, None, :])
        attn = attn.transpose(1, 2).reshape(n, -1, x.shape[-1])
        outs = []
        for h, s, a, (gate1, shift2, scale2, gate2) in ((x, self.image, attn[:, :li], mods[0]),
                                                        (y, self.text, attn[:, li:], mods[1])):
            h = h + gate1 * s.out(a)
            outs.append(h + gate2 * s.mlp(s.norm2(h) * (1 + scale2) + shift2))
        return outs[0], outs[1]


def _time_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal features of t in [0, 1] (scaled to 0..1000, as DiT's timesteps)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10_000) * torch.arange(half, device=t.device) / half)
    angles = 1000 * t[:, None].float() * freqs[None, :]
    return torch.cat([angles.cos(), angles.sin()], dim=-1)


class DualDiT(nn.Module):
    """The network, with the (frozen) latent codec it draws through: `loss` takes latents,
    `sample` returns pictures."""

    def __init__(self, config: DualConfig, vocab: TextVocabulary, codec: LatentCodec, meta: dict | None = None):
        super().__init__()
        self.config, self.vocab, self.meta = config, vocab, dict(meta or {})
        self.codec = codec.eval().requires_grad_(False)
        p, side = config.patch, LatentCodec.SIZE
        if side % p:
            raise ValueError(f"patch {p} does not divide the latent's side {side}")
        self.latent_shape = (codec.channels, side, side)
        d, n_patches, patch_values = config.dim, (side // p) ** 2, codec.channels * p * p
        torch.manual_seed(config.seed)
        self.patch_in = nn.Linear(patch_values, d)
        self.patch_position = nn.Parameter(torch.randn(1, n_patches, d) * 0.02)
        self.values = nn.ModuleList(nn.Embedding(vocab.size(a), d) for a in ATTRIBUTES)  # text tokens
        self.preference_values = nn.ModuleList(nn.Embedding(vocab.size(a), d) for a in ATTRIBUTES)
        self.slot = nn.Parameter(torch.randn(1, len(ATTRIBUTES), d) * 0.02)  # which attribute a token is
        self.category = nn.Embedding(len(vocab.categories), d)
        self.outfit_category = nn.Embedding(len(vocab.categories), d)
        self.features = nn.Sequential(nn.LayerNorm(config.feature_dim), nn.Linear(config.feature_dim, d))
        self.kind = nn.Parameter(torch.randn(1, 3, d) * 0.02)  # preference, history, outfit tokens
        self.no_outfit = nn.Parameter(torch.randn(d) * 0.02)  # the outfit token when there is no outfit
        self.description = nn.Sequential(nn.LayerNorm(config.description_dim), nn.Linear(config.description_dim, d))
        self.description_kind = nn.Parameter(torch.randn(1, 1, d) * 0.02)
        # The description also joins the text stream's modulation in every block, as SD3 adds its
        # pooled text embedding to the timestep's: zero-initialised, so an untrained reader changes nothing.
        self.description_pooled = nn.Linear(config.description_dim, d)
        nn.init.zeros_(self.description_pooled.weight)
        nn.init.zeros_(self.description_pooled.bias)
        self.time_image = nn.Sequential(nn.Linear(d, d), nn.SiLU(), nn.Linear(d, d))
        self.time_text = nn.Sequential(nn.Linear(d, d), nn.SiLU(), nn.Linear(d, d))
        self.blocks = nn.ModuleList(_Block(d, config.heads) for _ in range(config.depth))
        self.image_final = _Final(d, patch_values)
        self.text_final = _Final(d, max(vocab.size(a) for a in ATTRIBUTES))
        # Only values that items of the category have can be written.
        self.register_buffer("allowed", vocab.allowed(), persistent=False)
        # Pictures come out through the model's own decoder: the codec's, refined and modulated by
        # the words by the `decoder` stage (until then it decodes exactly as the codec does).
        self.decoder = WordsDecoder(self.codec, [vocab.size(a) for a in ATTRIBUTES], len(vocab.categories))

    # ------------------------------------------------------------------ the network

    def trainable(self) -> list[nn.Parameter]:
        """The parameters the diffusion stages update: the network's, not the codec's or the decoder's."""
        return [p for name, p in self.named_parameters() if not name.startswith(("codec.", "decoder."))]

    def text_branch(self) -> list[nn.Parameter]:
        """The parameters that touch only the text stream (`TEXT_BRANCH`): what text-aug fine-tunes."""
        return [p for name, p in self.named_parameters() if name.startswith(TEXT_BRANCH) or ".text." in name]

    def forward(self, noisy: torch.Tensor, t_image: torch.Tensor, text: torch.Tensor, t_text: torch.Tensor,
                cond: Conditions) -> tuple[torch.Tensor, torch.Tensor]:
        """noisy (N, C, 16, 16) latents at t_image (N,), text (N, 6) ids ([MASK] where hidden) at
        t_text (N,) -> (velocity (N, C, 16, 16), logits (N, 6, V), -inf outside the category's values)."""
        n, d = len(noisy), self.config.dim
        x = self.patch_in(_patchify(noisy, self.config.patch)) + self.patch_position
        words = torch.stack([table(text[:, k]) for k, table in enumerate(self.values)], dim=1) + self.slot
        conditions, pad = self._condition_tokens(cond, n)
        y = torch.cat([words, conditions], dim=1)
        text_pad = torch.cat([torch.zeros(n, len(ATTRIBUTES), dtype=torch.bool, device=y.device), pad], dim=1)
        category = self.category(cond.category)
        c_image = self.time_image(_time_embedding(t_image, d)) + category
        c_text = self.time_text(_time_embedding(t_text, d)) + category
        if cond.description is not None:  # only the text stream: text-aug leaves the image stream as it was
            present = (cond.description != 0).any(-1, keepdim=True)
            c_text = c_text + self.description_pooled(cond.description) * present
        for block in self.blocks:
            x, y = block(x, y, c_image, c_text, text_pad)
        velocity = _unpatchify(self.image_final(x, c_image), self.latent_shape, self.config.patch)
        logits = self.text_final(y[:, :len(ATTRIBUTES)], c_text).masked_fill(~self.allowed[cond.category], -torch.inf)
        return velocity, logits

    def _condition_tokens(self, cond: Conditions, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, 6 + 1 + L + 1, d) condition tokens (preference, history, outfit, description) and their
        padding mask. An absent description is a padded token: to a model that never read one, the
        token does not exist."""
        c = self.config
        device = cond.category.device
        # An absent preference is all "unknown" and an absent history is zeros: exactly what a
        # dropped condition is in training, so guidance's "without" is a state the model knows.
        ids = cond.preference if cond.preference is not None else self.vocab.unknowns.to(device).expand(n, -1)
        preference = torch.stack([table(ids[:, k]) for k, table in enumerate(self.preference_values)], 1)
        features = cond.history if cond.history is not None else torch.zeros(n, c.feature_dim, device=device)
        history = self.features(features)[:, None]
        if cond.outfit is None:
            outfit = self.no_outfit.expand(n, c.outfit_items, -1)
            outfit_pad = torch.ones(n, c.outfit_items, dtype=torch.bool, device=device)
        else:
            present = cond.outfit_category >= 0
            outfit = self.features(cond.outfit) + self.outfit_category(cond.outfit_category.clamp(min=0))
            outfit = torch.where(present[..., None], outfit, self.no_outfit)
            outfit_pad = ~present
        outfit_pad[:, 0] = False  # the first token always counts: the "no outfit" one when there is none
        if cond.description is None:
            description = self.description_kind.expand(n, -1, -1)
            description_pad = torch.ones(n, 1, dtype=torch.bool, device=device)
        else:  # a zero row has no description (sentence embeddings have unit length)
            description = self.description(cond.description)[:, None] + self.description_kind
            description_pad = (cond.description == 0).all(-1, keepdim=True)
        tokens = torch.cat([preference + self.slot + self.kind[:, :1], history + self.kind[:, 1:2],
                            outfit + self.kind[:, 2:], description], dim=1)
        pad = torch.cat([torch.zeros(n, len(ATTRIBUTES) + 1, dtype=torch.bool, device=device), outfit_pad,
                         description_pad], dim=1)
        return tokens, pad

    # ------------------------------------------------------------------ training

    def loss(self, images: torch.Tensor, text: torch.Tensor, cond: Conditions,
             generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        """The training loss of a batch: images (N, C, 16, 16) latents (the codec's), text (N, 6) ids."""
        n, dev = len(images), images.device
        t_image = torch.sigmoid(torch.randn(n, generator=generator)).to(dev)  # logit-normal(0, 1)
        noise = torch.randn(images.shape, generator=generator).to(dev)
        noisy = (1 - t_image[:, None, None, None]) * images + t_image[:, None, None, None] * noise
        t_text = torch.rand(n, generator=generator).clamp(min=1e-3).to(dev)
        hidden = torch.rand(text.shape, generator=generator).to(dev) < t_text[:, None]
        if not self.config.text_stream:  # the image-only baseline: no words, no preference
            t_text, hidden, cond = torch.ones(n, device=dev), torch.ones_like(hidden), cond.without("preference")
        masked = torch.where(hidden, self.vocab.masks.to(dev), text)
        cond = self._drop(cond, generator)
        velocity, logits = self(noisy, t_image, masked, t_text, cond)
        image_loss = F.mse_loss(velocity, noise - images)
        ce = F.cross_entropy(logits.flatten(0, 1), text.flatten(), reduction="none").view(text.shape)
        text_loss = (ce * hidden / t_text[:, None]).sum() / (n * len(ATTRIBUTES))
        if not self.config.text_stream:
            text_loss = text_loss.detach() * 0
        total = image_loss + self.config.text_weight * text_loss
        return total, {"image": float(image_loss.detach()), "text": float(text_loss.detach())}

    def decoder_loss(self, latents: torch.Tensor, text: torch.Tensor, category: torch.Tensor, pictures: torch.Tensor,
                     critic: WordsCritic | None = None, adversarial_weight: float = 0.1,
                     generator: torch.Generator | None = None
                     ) -> tuple[torch.Tensor, dict[str, float], torch.Tensor]:
        """The `decoder` stage's loss on real items: their latents, true words (each hidden at a rate
        drawn per item from U(0, 1), so that any share of words works; all hidden for an image-only
        model, which never has words) and pictures in [-1, 1]. With a critic (`WordsCritic`, judging
        the picture against the words the model may know), its verdict counts `adversarial_weight`.
        Returns the loss, its parts and the pictures made (for the critic's own step)."""
        n, dev = len(latents), latents.device
        rate = torch.rand(n, 1, generator=generator) if self.config.text_stream else torch.ones(n, 1)
        hidden = (torch.rand(text.shape, generator=generator) < rate).to(dev)
        words = torch.where(hidden, self.vocab.masks.to(dev), text)
        made = self.decoder.draw(latents, words, category)
        reconstruction = reconstruction_loss(made, pictures)
        parts = {"image": float(reconstruction.detach())}  # the pictures' loss; there is no text loss
        if critic is None:
            return reconstruction, parts, made.detach()
        adversarial = -critic(made.clamp(-1, 1), self.critic_words(text), category).mean()
        parts["adversarial"] = float(adversarial.detach())
        return reconstruction + adversarial_weight * adversarial, parts, made.detach()

    def critic_words(self, text: torch.Tensor) -> torch.Tensor:
        """The words the decoder stage's critic judges a picture against: the true ones, or none
        (all [MASK]) for an image-only model, whose decoder never reads words."""
        return text if self.config.text_stream else self.vocab.masks.to(text.device).expand(len(text), -1)

    def _drop(self, cond: Conditions, generator: torch.Generator | None) -> Conditions:
        """Drop each condition for a random share `drop` of the batch (its tokens become "absent")."""
        out = Conditions(category=cond.category)
        if cond.description is not None:  # dropped: a zero row, which the model reads as absent
            keep = torch.rand(len(cond), generator=generator) >= self.config.drop
            out.description = cond.description * keep[:, None].to(cond.description.device)
        for name in ("preference", "history"):
            value = getattr(cond, name)
            if value is not None:
                keep = torch.rand(len(cond), generator=generator) >= self.config.drop
                if name == "preference":
                    value = torch.where(keep[:, None].to(value.device), value, self.vocab.unknowns.to(value.device))
                else:
                    value = value * keep[:, None].to(value.device)
                setattr(out, name, value)
        if cond.outfit is not None:
            keep = (torch.rand(len(cond), generator=generator) >= self.config.drop).to(cond.outfit.device)
            out.outfit = cond.outfit
            out.outfit_category = torch.where(keep[:, None], cond.outfit_category, -1)
        return out

    # ------------------------------------------------------------------ sampling

    @torch.no_grad()
    def sample(self, cond: Conditions, steps: int = 20, guidance: dict[str, float] | None = None,
               image: torch.Tensor | None = None, text: torch.Tensor | None = None, seed: int = 0,
               temperature: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
        """Generate pictures (N, 3, 64, 64) in [-1, 1] and attribute ids (N, 6) for the conditions.

        Give `image` (pictures in [-1, 1]) to caption it (its latent stays as given, t_image = 0).
        Give `text` to draw it:
        its ids stay as given, and [MASK] ids (`vocab.mask`) are filled in, so a partial description
        works. `guidance`: a scale per condition present ("description", "preference", "history",
        "outfit") and for "words", the words written or given so far, which guide the picture
        toward what they say; 1 by default (no guidance). `temperature` divides the words' logits:
        below 1 the likelier values are written more often, 0 writes the likeliest."""
        from diffusers import FlowMatchEulerDiscreteScheduler

        self.eval()
        n, dev = len(cond), cond.category.device
        generator = torch.Generator().manual_seed(seed)
        scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=1.0)
        scheduler.set_timesteps(steps)
        if image is None:
            x = torch.randn(n, *self.latent_shape, generator=generator).to(dev)
        else:
            x = self.codec.encode_tensor(image.to(dev))
        masks = self.vocab.masks.to(dev).expand(n, -1)
        y = masks.clone() if text is None else text.to(dev).clone()
        if not self.config.text_stream:
            y, cond = masks.clone(), cond.without("preference")
        sigmas = scheduler.sigmas.tolist()
        for k, timestep in enumerate(scheduler.timesteps):
            s, s_next = sigmas[k], sigmas[k + 1]
            t_image = torch.full((n,), s if image is None else 0.0, device=dev)
            t_text = (y == masks).float().mean(1)  # absorbing diffusion: the share still masked is the time
            velocity, logits = self._guided(x, t_image, y, t_text, cond, guidance or {})
            if image is None:
                x = scheduler.step(velocity, timestep, x).prev_sample
            # MDLM: a masked token is revealed between s and s_next with chance (s - s_next) / s.
            reveal = (torch.rand(y.shape, generator=generator).to(dev) < (s - s_next) / s) & (y == masks)
            gumbel = -torch.log(-torch.log(torch.rand(logits.shape, generator=generator).clamp(1e-10, 1 - 1e-7)))
            # A draw from softmax(logits / temperature), from the seeded generator; the argmax at 0.
            drawn = (logits if temperature == 0 else logits / temperature + gumbel.to(dev)).argmax(-1)
            if self.config.text_stream:
                y = torch.where(reveal, drawn, y)
        pictures = self.decoder(x, y, cond.category) if image is None else image.to(dev).clamp(-1, 1)
        return pictures, y

    def _guided(self, x, t_image, y, t_text, cond: Conditions, guidance: dict[str, float]):
        """Nested classifier-free guidance: out(none) + sum over present conditions c, in order, of
        scale_c * (out(up to c) - out(up to the one before)). With a "words" scale, the innermost
        level is the picture without any words (all [MASK], t_text = 1), and the words guide the
        velocity only: they are what the other words are written beside, not a condition of them."""
        present = [c for c in CONDITIONS if getattr(cond, c) is not None]
        words = guidance.get("words", 1.0)
        if words != 1.0 and not self.config.text_stream:
            raise ValueError("guidance on the words needs a model with a text stream")
        if words == 1.0 and all(guidance.get(c, 1.0) == 1.0 for c in present):
            return self(x, t_image, y, t_text, cond)
        outs = [self(x, t_image, y, t_text, cond.without(*present))]
        for k in range(len(present)):
            outs.append(self(x, t_image, y, t_text, cond.without(*present[k + 1:])))
        velocity, logits = outs[0][0].clone(), outs[0][1].log_softmax(-1)
        if words != 1.0:
            masks = self.vocab.masks.to(y.device).expand_as(y)
            wordless = self(x, t_image, masks, torch.ones_like(t_text), cond.without(*present))[0]
            velocity = wordless + words * (velocity - wordless)
        for k, c in enumerate(present):
            scale = guidance.get(c, 1.0)
            velocity += scale * (outs[k + 1][0] - outs[k][0])
            logits = logits + scale * (outs[k + 1][1].log_softmax(-1) - outs[k][1].log_softmax(-1))
        return velocity, logits.nan_to_num(nan=-torch.inf)

    # ------------------------------------------------------------------ storage

    def save(self, directory: str | Path) -> Path:
        with atomic_path(directory) as tmp:
            tmp.mkdir()
            save_file({k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}, str(tmp / WEIGHTS))
            write_json(tmp / CONFIG, {"config": asdict(self.config), "vocabulary": self.vocab.to_json(),
                                      "codec": {"channels": self.codec.channels, "width": self.codec.width},
                                      "meta": self.meta})
        return Path(directory)

    @classmethod
    def load(cls, directory: str | Path) -> DualDiT:
        directory = Path(directory)
        if not (directory / CONFIG).exists():
            raise FileNotFoundError(f"{directory} holds no saved dual model ({CONFIG} is missing)")
        saved = json.loads((directory / CONFIG).read_text())
        known = {f.name for f in fields(DualConfig)}
        if "codec" not in saved:
            raise ValueError(f"{directory} is a dual model of phase one (pixel patches): retrain it")
        vocab = TextVocabulary(**saved["vocabulary"])
        codec = LatentCodec(**saved["codec"])
        model = cls(DualConfig(**{k: v for k, v in saved["config"].items() if k in known}), vocab, codec, saved["meta"])
        missing, unexpected = model.load_state_dict(load_file(str(directory / WEIGHTS)), strict=False)
        # A model saved before the description reader or the words decoder existed lacks only their
        # weights: the reader stays as initialised, unused until the text-aug stage trains it, and
        # the decoder starts from the loaded codec's, so the model draws as it always did.
        if unexpected or any(not k.startswith(("description", "decoder.")) for k in missing):
            raise ValueError(f"{directory / WEIGHTS} does not match its {CONFIG}: missing {missing}, unexpected {unexpected}")
        if any(k.startswith("decoder.") for k in missing):
            model.decoder.start_from(model.codec)
        return model.eval()

    @property
    def reads_descriptions(self) -> bool:
        """Whether the text-aug stage taught this model to read the description condition."""
        return bool(self.meta.get("reads_descriptions"))


class _Final(nn.Module):
    """DiT's final layer: adaLN (shift, scale) then a zero-initialised linear map."""

    def __init__(self, dim: int, out: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.modulation = nn.Linear(dim, 2 * dim)
        self.linear = nn.Linear(dim, out)
        for layer in (self.modulation, self.linear):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, h: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift, scale = self.modulation(F.silu(c)).unsqueeze(1).chunk(2, dim=-1)
        return self.linear(self.norm(h) * (1 + scale) + shift)


def _patchify(x: torch.Tensor, p: int) -> torch.Tensor:
    """(N, C, S, S) -> (N, (S / p)^2, C * p * p)."""
    n, c, s, _ = x.shape
    g = s // p
    return x.reshape(n, c, g, p, g, p).permute(0, 2, 4, 1, 3, 5).reshape(n, g * g, c * p * p)


def _unpatchify(tokens: torch.Tensor, shape: tuple[int, int, int], p: int) -> torch.Tensor:
    """The inverse of `_patchify`, to (N, *shape)."""
    (c, s, _), n = shape, len(tokens)
    g = s // p
    return tokens.reshape(n, g, g, c, p, p).permute(0, 3, 1, 4, 2, 5).reshape(n, c, s, s)
