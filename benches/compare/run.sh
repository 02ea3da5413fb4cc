#!/usr/bin/env bash
# Side by side, in one run on one machine: `wgcnn bench --json` and the same LeNet-5 trained with
# PyTorch (benches/compare/pytorch_lenet.py; CUDA when present, else the CPU). Prints a table of
# images/s and the ratios. Needs python3 with torch; extra arguments go to both (e.g. --windows 3).
#
#   bash benches/compare/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --quiet
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
./target/release/wgcnn bench --json --profile 0 "$@" > "$out/wgcnn.json"
python3 benches/compare/pytorch_lenet.py --json "$@" > "$out/torch.json"
python3 - "$out/wgcnn.json" "$out/torch.json" <<'PY'
import json, sys
w = json.load(open(sys.argv[1]))
t = json.load(open(sys.argv[2]))
print(f"wgcnn   on {w['adapter']} ({w['backend']}, {w['kernels']} kernels)")
print(f"{t['engine']} on {t['device']}")
print(f"{'figure':<28}{'wgcnn':>12}{'pytorch':>12}{'wgcnn/pytorch':>15}")
tb = {r['batch']: r['images_per_sec'] for r in t['training']}
for r in w['training']:
    p = tb.get(r['batch'])
    if p:
        print(f"{'training images/s, batch ' + str(r['batch']):<28}{r['images_per_sec']:>12.1f}{p:>12.1f}{r['images_per_sec'] / p:>15.3f}")
wi, ti = w['inference']['images_per_sec'], t['inference']['images_per_sec']
print(f"{'inference images/s, b' + str(w['inference']['batch']):<28}{wi:>12.1f}{ti:>12.1f}{wi / ti:>15.3f}")
PY
