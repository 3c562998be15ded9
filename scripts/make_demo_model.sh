#!/usr/bin/env bash
# Rebuild the bundled demonstration checkpoint with the project's own commands.
# Task: real carcinoma vs stroma crops from $SCORENET_DATA/tiles (see docs/demo-model.md).
set -euo pipefail
cd "$(dirname "$0")/.."
WORK="${1:-$(mktemp -d)}"
BIN=.venv/bin
$BIN/python -m scorenet.demo_data "$WORK/train" --per-class 100 --seed 0 --size 512x768 --size 768x512 --size 1024x1024
$BIN/python -m scorenet.demo_data "$WORK/test" --per-class 40 --seed 1 --size 512x768 --size 768x512 --size 1024x1024
# INIT: pre-trained weights to start from (benchmarks/pretrain_planted_sources.sh writes some)
$BIN/scorenet train "$WORK/train" --out "$WORK/run" --device cpu --mpp 0.5 --seed 0 --mix scoremix --mix-prob 0.5 \
    ${INIT:+--init "$INIT"} ${RECIPE:+--recipe "$RECIPE"}
$BIN/scorenet eval "$WORK/test" --checkpoint "$WORK/run/best.safetensors" --out "$WORK/eval" --device cpu
mkdir -p napari_scorenet/weights
cp "$WORK/run/best.safetensors" napari_scorenet/weights/.scorenet_demo.tmp
mv napari_scorenet/weights/.scorenet_demo.tmp napari_scorenet/weights/scorenet_demo.safetensors
cp "$WORK/eval/metrics.json" benchmarks/results/demo-model-metrics.json
cp "$WORK/run/log.csv" benchmarks/results/demo-model-train-log.csv
echo "work folder: $WORK"
