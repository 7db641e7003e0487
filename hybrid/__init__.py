"""hybrid: a Hydra-composed CNN-Transformer classifier for sewer-pipe CCTV inspection."""

__version__ = "0.1.0"
