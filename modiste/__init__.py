"""modiste: personalized, generative fashion recommendation."""

__version__ = "0.1.0"
