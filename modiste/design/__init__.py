"""Personalized design: new items that a given user would like.

- `gan`: a category-conditional GAN (LSGAN) on 64x64 item pictures, after DVBPR;
- `train`: its training runs (checkpoints, resume, a sample sheet per epoch);
- `pm`: preference maximisation in the GAN's latent space with the DVBPR model, and tailoring
  of a catalogue item;
- `metrics`: FID with modiste's own encoder (torchmetrics) and diversity, shared by every generator;
- `api`: designs with ids and their picture (the CLI's `modiste design`);
- `bench`: `modiste bench design`.
"""

from modiste.design.gan import CategoryGAN, GANConfig
from modiste.design.pm import Designs, PMConfig, maximise_preference, tailor
from modiste.design.train import GANTrainConfig, train_gan

__all__ = ["CategoryGAN", "Designs", "GANConfig", "GANTrainConfig", "PMConfig", "maximise_preference", "tailor",
           "train_gan"]
