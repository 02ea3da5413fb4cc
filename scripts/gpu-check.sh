#!/usr/bin/env bash
# One check of wgcnn on a machine with a real GPU, in about 8 minutes:
#   1. `wgcnn info` (adapter, limits, features);
#   2. the test suite on that adapter (`cargo test --release`);
#   3. `wgcnn bench --json` for LeNet-5 and every model of models/ (training at batch 64 and 256,
#      inference, the per-kernel table);
#   4. the PyTorch comparison for LeNet-5 (CUDA when present; skipped when torch is not installed);
# and writes everything, plus one summary (summary.json, summary.md), into OUT (default gpu-check/).
#
#   scripts/gpu-check.sh [OUT]            on the GPU machine (WGCNN_ADAPTER=hardware unless set)
#   DRY_RUN=1 scripts/gpu-check.sh [OUT]  anywhere, on whatever adapter there is (e.g. lavapipe), with
#                                         smaller benchmark windows: proves the script end to end
#
# Each step's time and exit status go into the summary; a failing step does not stop the others, and the
# script exits non-zero if any failed. Without Vulkan on the machine, see docs/backends.md ("Choosing the adapter").
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-gpu-check}
mkdir -p "$out"
dry=${DRY_RUN:-0}
if [ "$dry" = 1 ]; then
  bench_args=(--batch-sizes 64,256 --warmup 1 --windows 1 --steps 2 --infer-batch 500 --profile 0)
  torch_args=(--batch-sizes 64,256 --warmup 1 --windows 1 --steps 2 --infer-batch 500)
else
  export WGCNN_ADAPTER=${WGCNN_ADAPTER:-hardware}
  bench_args=(--batch-sizes 64,256 --warmup 5 --windows 5 --steps 20 --profile 3)
  torch_args=(--batch-sizes 64,256 --warmup 5 --windows 5 --steps 20)
fi
steps_file="$out/steps.tsv"
: > "$steps_file"

# step NAME LOGFILE COMMAND...: run (stdout to LOGFILE, stderr to LOGFILE.err), time, record
# "name<TAB>status<TAB>seconds<TAB>log".
step() {
  local name=$1 log=$2
  shift 2
  local t0=$SECONDS
  echo "== $name"
  "$@" > "$out/$log" 2> "$out/$log.err"
  local rc=$?
  printf '%s\t%s\t%s\t%s\n' "$name" "$rc" "$((SECONDS - t0))" "$log" >> "$steps_file"
  echo "   exit $rc in $((SECONDS - t0)) s ($out/$log)"
}

step build build.log cargo build --release --quiet
step info info.txt ./target/release/wgcnn info
# The GL tests of tests/backends.rs need Mesa's EGL (llvmpipe through OpenGL); a GPU machine without
# it skips just those two, and says so in the log.
gl_skip=()
if ! ldconfig -p 2>/dev/null | grep -q 'libEGL_mesa\.so'; then
  gl_skip=(-- --skip gl_trains_to_the_same_loss_as_vulkan --skip without_vulkan_wgcnn_falls_back_to_gl)
  echo "no Mesa EGL here: the two GL tests are skipped" | tee "$out/tests-gl-skipped.txt"
fi
step tests tests.log cargo test --release "${gl_skip[@]}"
for m in models/*.toml; do
  name=$(basename "$m" .toml)
  step "bench $name" "bench-$name.json" ./target/release/wgcnn bench --json --model "$m" "${bench_args[@]}"
done
if python3 -c 'import torch' 2>/dev/null; then
  step "pytorch lenet5" pytorch-lenet5.json python3 benches/compare/pytorch_lenet.py --json "${torch_args[@]}"
else
  printf 'pytorch lenet5\tskipped\t0\t-\n' >> "$steps_file"
  echo "== pytorch lenet5: skipped (python3 with torch not installed)"
fi

python3 - "$out" "$dry" <<'PY'
import json, os, re, sys
out, dry = sys.argv[1], sys.argv[2] == "1"
steps = [dict(zip(["step", "status", "seconds", "log"], l.rstrip("\n").split("\t"))) for l in open(f"{out}/steps.tsv")]
def load(name):
    try:
        return json.load(open(f"{out}/{name}"))
    except Exception:
        return None
info = open(f"{out}/info.txt").read() if os.path.exists(f"{out}/info.txt") else ""
adapter = re.search(r"^adapter\s+(.*)$", info, re.M)
tests = "".join(open(f"{out}/{f}").read() for f in ("tests.log", "tests.log.err") if os.path.exists(f"{out}/{f}"))
passed = sum(int(n) for n in re.findall(r"test result: \w+\. (\d+) passed", tests))
failed = sum(int(n) for n in re.findall(r"test result: \w+\. \d+ passed; (\d+) failed", tests))
benches = {}
for s in steps:
    if s["step"].startswith("bench ") and s["status"] == "0":
        b = load(s["log"])
        if b:
            benches[s["step"][6:]] = {
                "training_images_per_sec": {str(r["batch"]): r["images_per_sec"] for r in b["training"]},
                "inference_images_per_sec": b["inference"]["images_per_sec"],
                "first_step_seconds": b.get("first_step_seconds"),
                "ceiling_gflops": b.get("ceiling_gflops"),
                "tuning": b.get("tuning"),
                # Autotuning: the variant each tuned launch chose, and how (timed, cached, default).
                "tuned": [f"{t['family']} {t['shape']}: {t['variant']} ({t['how']})" for t in b.get("tuned", [])],
            }
torch = load("pytorch-lenet5.json")
summary = {
    "dry_run": dry,
    "adapter": adapter.group(1) if adapter else None,
    "tests": {"passed": passed, "failed": failed},
    "steps": steps,
    "total_seconds": sum(int(s["seconds"]) for s in steps),
    "bench": benches,
    "pytorch_lenet5": None if torch is None else {
        "device": torch.get("device"),
        "training_images_per_sec": {str(r["batch"]): r["images_per_sec"] for r in torch["training"]},
        "inference_images_per_sec": torch["inference"]["images_per_sec"],
    },
}
json.dump(summary, open(f"{out}/summary.json", "w"), indent=1)
md = [f"# gpu-check{' (dry run)' if dry else ''}", "", f"adapter: {summary['adapter']}",
      f"tests: {passed} passed, {failed} failed", f"total: {summary['total_seconds']} s", "",
      "| step | status | seconds |", "| --- | --- | --- |"]
md += [f"| {s['step']} | {s['status']} | {s['seconds']} |" for s in steps]
md += ["", "| model | train b64 img/s | train b256 img/s | inference img/s |", "| --- | --- | --- | --- |"]
for name, b in benches.items():
    t = b["training_images_per_sec"]
    md.append(f"| {name} | {t.get('64', 0):.0f} | {t.get('256', 0):.0f} | {b['inference_images_per_sec']:.0f} |")
md += ["", "Autotuning's choices (WGCNN_TUNE=" + str(next(iter(benches.values()), {}).get("tuning")) + "):"]
for name, b in benches.items():
    md += [f"- {name}: " + "; ".join(b["tuned"])]
if torch:
    t = summary["pytorch_lenet5"]["training_images_per_sec"]
    w = benches.get("lenet5", {}).get("training_images_per_sec", {})
    md.append(f"| PyTorch LeNet-5 ({torch.get('device')}) | {t.get('64', 0):.0f} | {t.get('256', 0):.0f} | {summary['pytorch_lenet5']['inference_images_per_sec']:.0f} |")
    if w:
        md += ["", "wgcnn / PyTorch, LeNet-5 training: " + ", ".join(f"batch {k}: {w[k] / t[k]:.2f}" for k in w if k in t)]
open(f"{out}/summary.md", "w").write("\n".join(md) + "\n")
print("\n".join(md))
PY
! grep -qvP '\t(0|skipped)\t' "$steps_file"
