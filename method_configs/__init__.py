"""MethodSpecification presets of latent-triplane-ns, named by the `nerfstudio.method_configs` entry points."""
