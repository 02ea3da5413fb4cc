#!/usr/bin/env bash
# The zoo's Fashion-MNIST table (docs/models.md): every model of models/ for its [train] table's
# epochs (10) on the full 60,000 / 10,000 images, seed 1, flips added for the 28×28 zoo (clothes
# mirror, digits do not) unless the [train] table names its own augmentation (LeNet-5 as shipped,
# without). Checkpoints and logs go to OUT
# (default fashion-zoo/). Needs `apt-get install dataset-fashion-mnist` and a release build.
#
#   scripts/fashion_zoo.sh [OUT] [MODEL...]      e.g. scripts/fashion_zoo.sh fashion-zoo resnet-mini lenet5
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-fashion-zoo}
shift || true
data=${FASHION_MNIST:-/usr/share/datasets/fashion-mnist}
models=("$@")
[[ ${#models[@]} -gt 0 ]] || models=(resnet-mini lenet5 vgg-mini densenet-mini inception-mini alexnet-mini residual-mini)
mkdir -p "$out"
for m in "${models[@]}"; do
  extra=(--augment flip)
  if [[ $m == lenet5 ]] || grep -q '^augment *=' "models/$m.toml"; then extra=(); fi
  echo "== $m"
  start=$SECONDS
  ./target/release/wgcnn train --model "models/$m.toml" --data "$data" --seed 1 "${extra[@]}" \
    --save "$out/$m.safetensors" --save-every-epoch 2>&1 | tee "$out/$m.log" | grep -E "^epoch [0-9]+:|test accuracy"
  echo "   $((SECONDS - start)) s"
done
