#!/usr/bin/env bash
# The commands that made the shipped autoencoder, run in an empty folder with the project's .venv on PATH, on a
# 2-core CPU (Intel Xeon, fp32; 30 minutes of training on random 64 px crops with an equivariance loss; train.log is
# the output of ltn-train-ae). The training images are cars of seed 1, which no evaluated scene uses.
set -euo pipefail
ltn-generate --output data/cars-seed1 --num-scenes 100 --seed 1 --num-train-views 30 --num-test-views 2
ltn-train-ae --data data/cars-seed1 --output-dir tiny-f4c4-cars-eq \
  --training.architecture.kind tiny --training.architecture.block-out-channels 64 64 64 \
  --training.object-weight 10 --training.crop-size 64 --training.equivariance-weight 0.5 --training.max-minutes 30
