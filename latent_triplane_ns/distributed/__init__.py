"""Scene-parallel training on torch.distributed: each rank trains a contiguous shard of a collection's scenes with
nerfstudio's own `Trainer`, shared parameters are averaged across ranks at every step, and rank 0 writes one run
folder holding every scene. Launch: `torchrun --nproc-per-node 2 -m latent_triplane_ns.distributed <ns-train args>`.
"""
