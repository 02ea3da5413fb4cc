#!/usr/bin/env bash
# Side by side, in one run on one adapter: `wgcnn bench --json` and the same LeNet-5 in Burn 0.22 on
# its wgpu backend (benches/compare/burn: autotune and fusion on, Burn's defaults), both training at
# batch 64 and 256 on random 28x28 pictures and inferring at batch 1000. Prints images/s and the ratios.
#
#   bash benches/compare/burn.sh [--windows N --steps N --warmup N]
#
# Building Burn takes about 40 minutes on 2 cores the first time (into $BURN_TARGET, default
# target/burn-bench). Pick the adapter for both with WGCNN_ADAPTER and CUBECL_WGPU_DEFAULT_DEVICE
# (on a machine whose only adapter is lavapipe both take it).
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --quiet
target="${BURN_TARGET:-$PWD/target/burn-bench}"
CARGO_TARGET_DIR="$target" cargo build --release --quiet --manifest-path benches/compare/burn/Cargo.toml
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
./target/release/wgcnn bench --json --profile 0 "$@" > "$out/wgcnn.json"
"$target/release/burn-lenet-bench" "$@" > "$out/burn.json"
python3 - "$out/wgcnn.json" "$out/burn.json" <<'PY'
import json, sys
w = json.load(open(sys.argv[1]))
b = json.load(open(sys.argv[2]))
print(f"wgcnn {w['adapter']} ({w['backend']}, {w['kernels']} kernels); {b['engine']}")
print(f"{'figure':<30}{'wgcnn':>12}{'burn':>12}{'wgcnn/burn':>12}")
bt = {r['batch']: r['images_per_sec'] for r in b['training']}
for r in w['training']:
    if r['batch'] in bt:
        p = bt[r['batch']]
        print(f"{'training images/s, batch ' + str(r['batch']):<30}{r['images_per_sec']:>12.1f}{p:>12.1f}{r['images_per_sec'] / p:>12.2f}")
wi, bi = w['inference']['images_per_sec'], b['inference']['images_per_sec']
print(f"{'inference images/s, b' + str(w['inference']['batch']):<30}{wi:>12.1f}{bi:>12.1f}{wi / bi:>12.2f}")
PY
