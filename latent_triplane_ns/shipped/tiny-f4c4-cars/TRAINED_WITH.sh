#!/usr/bin/env bash
# The commands that made the shipped autoencoder, run in an empty folder with the project's .venv on PATH, on a
# 2-core CPU (AMD EPYC, fp32; 45 minutes of training; train.log is their output). The training images are cars of
# seed 1, which no evaluated scene uses.
set -euo pipefail
ltn-generate --output data/cars-seed1 --num-scenes 100 --seed 1 --num-train-views 30 --num-test-views 2
ltn-train-ae --data data/cars-seed1 --output-dir tiny-f4c4-cars \
  --training.architecture.kind tiny --training.architecture.block-out-channels 64 64 64 \
  --training.object-weight 10 --training.max-minutes 45
