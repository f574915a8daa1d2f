"""Latent Tri-Plane radiance fields for many similar scenes, as a nerfstudio plugin."""

__version__ = "0.1.0"
