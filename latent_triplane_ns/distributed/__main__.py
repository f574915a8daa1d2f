"""`python -m latent_triplane_ns.distributed <ns-train arguments>`, under torchrun."""

from latent_triplane_ns.quiet import silence_harmless_warnings

silence_harmless_warnings()  # before nerfstudio's modules are imported, since they warn when imported

from latent_triplane_ns.distributed.launch import entrypoint  # noqa: E402

entrypoint()
