#!/usr/bin/env bash
# Fuzz wgcnn's readers of untrusted files with cargo-fuzz (libFuzzer) on the nightly toolchain:
#   scripts/fuzz.sh [SECONDS per target, default 600] [TARGET...]
# Targets: idx, checkpoint, model_file, picture, onnx_import (fuzz/fuzz_targets/). Seeds come from the repository's
# own files (a labels file, the model files, the pictures of docs/visualize.md) and a small hand-made checkpoint.
# Not part of CI's default run.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-600}
shift || true
targets=("$@")
((${#targets[@]})) || targets=(idx checkpoint model_file picture onnx_import)

rustup toolchain list | grep -q nightly || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked

# Seed corpora from files in the repository.
mkdir -p fuzz/corpus/idx fuzz/corpus/checkpoint fuzz/corpus/model_file fuzz/corpus/picture fuzz/corpus/onnx_import
cp -n fuzz/seeds/onnx/*.onnx fuzz/corpus/onnx_import/ 2>/dev/null || true
cp -n data/mnist-sample/t10k-labels-idx1-ubyte.gz fuzz/corpus/idx/ 2>/dev/null || true
cp -n models/*.toml fuzz/corpus/model_file/ 2>/dev/null || true
for f in docs/img/filters-conv1.png docs/img/maps-0[13]-*.png tests/data/digit*.{png,jpg}; do [ -f "$f" ] && cp -n "$f" fuzz/corpus/picture/; done
if [ -z "$(ls fuzz/corpus/checkpoint)" ]; then
  header='{"__metadata__":{"format":"pt","wgcnn.model":"lenet5"},"fc3.bias":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}'
  { printf "$(printf '\\x%02x' $((${#header} & 255)) $((${#header} >> 8)) 0 0 0 0 0 0)"; printf '%s' "$header"; printf '\0\0\200\077\0\0\0\100'; } \
    > fuzz/corpus/checkpoint/seed.safetensors
fi

for t in "${targets[@]}"; do
  echo "== $t: ${secs} s"
  cargo +nightly fuzz run "$t" "fuzz/corpus/$t" -- -max_total_time="$secs" -rss_limit_mb=2048 -print_final_stats=1 2>&1 \
    | grep -E "^(stat::|#[0-9]+.*DONE|==|ERROR|SUMMARY)|Done [0-9]+ runs" || true
done
