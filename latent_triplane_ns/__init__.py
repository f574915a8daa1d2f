"""Latent Tri-Plane radiance fields for many similar scenes, as a nerfstudio plugin."""

from latent_triplane_ns.errors import install_excepthook

__version__ = "0.1.0"

# nerfstudio's commands (ns-train, ns-viewer, ns-render, ns-eval) import the plugin through its entry points: a bad
# input they meet in it is then shown as its one-line message rather than a traceback.
install_excepthook()
