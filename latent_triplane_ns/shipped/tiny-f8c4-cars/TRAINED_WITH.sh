#!/usr/bin/env bash
# The commands that made the shipped autoencoder, run in an empty folder with the project's .venv on PATH, on a
# 2-core CPU (two short test runs shared it for about 2 of the 50 minutes of training; train.log is their output).
set -euo pipefail
ltn-generate --output data/cars-seed1 --num-scenes 100 --seed 1 --num-train-views 30 --num-test-views 2
ltn-train-ae --data data/cars-seed1 --output-dir tiny-f8c4-cars \
  --training.architecture.kind tiny --training.architecture.block-out-channels 64 64 64 64 \
  --training.max-minutes 50
