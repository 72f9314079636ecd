#!/usr/bin/env bash
# Every training and rendering path on a CUDA GPU, end to end through the CLI: both recipes
# with autocast (bf16, and fp16 with its gradient scaler), resume, the judge, a tokenizer and
# both token LMs, and the shipped model's README example (sines and WaveNet, timed). Prints
# one line per check and the timings; the first failure stops it (set -e).
#   bash bench/cuda_check.sh [WORK]        (WORK: a scratch folder, default /tmp/umt-cuda)
# DEVICE=cpu runs the same checks on the CPU (slowly; autocast then only where asked for).
# Needs a CUDA torch and umt's dependencies; run from the repository root.
set -euo pipefail
W=${1:-/tmp/umt-cuda}
PY=${PY:-python3}
UMT="$PY -m umt"
rm -rf "$W" && mkdir -p "$W"
DEVICE=${DEVICE:-cuda}
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda,
        torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU')"

# two easily told-apart domains, six one-second files each
$PY - "$W" <<'EOF'
import sys
from pathlib import Path
import numpy as np, soundfile as sf
root = Path(sys.argv[1])
t = np.arange(16000) / 16000
for domain, base, amplitude in (("low", 150.0, 0.8), ("high", 2500.0, 0.2)):
    for i in range(6):
        path = root / "src" / domain / f"{i}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, (amplitude * np.sin(2 * np.pi * base * 2 ** (i / 6) * t)).astype(np.float32), 16000)
EOF
$UMT prepare "$W/src" "$W/prep" >/dev/null
check() { echo "ok: $*"; }
quick=(--val-every 10 --val-items 2 --checkpoint-every 10 --device $DEVICE)

$UMT train "$W/prep" --out "$W/spectral" --preset tiny-spectral --steps 20 --precision bf16 "${quick[@]}" --chroma-weight 0.3 | tail -2
check "spectral recipe, bf16 autocast, translation-chroma term"
$UMT train "$W/prep" --out "$W/spectral" --resume --steps 30 | tail -1
check "resume on CUDA"
$UMT train "$W/prep" --out "$W/spectral16" --preset tiny-spectral --steps 10 --precision fp16 "${quick[@]}" | tail -1
check "spectral recipe, fp16 autocast with the gradient scaler"
$UMT train "$W/prep" --out "$W/paper" --preset tiny --crop 800 --steps 20 --workers 2 "${quick[@]}" | tail -1
check "wavenet recipe (auto precision), DataLoader workers, TensorBoard clips"
$UMT judge train "$W/prep" --out "$W/judge" --steps 20 --crop-seconds 0.5 --test-clips 2 --device $DEVICE | tail -1
check "judge"
$UMT tokenizer train "$W/prep" --from "$W/spectral/best.pt" --out "$W/tok" --codebooks 2 --codebook-size 8 --steps 10 \
  --mmd-weight 1 --device $DEVICE | tail -1
check "tokenizer with the independence loss"
for mode in parallel joint; do
  $UMT lm train "$W/prep" --model "$W/tok/best.pt" --out "$W/lm-$mode" --mode $mode --context 8 --steps 20 \
    --val-every 10 --device $DEVICE 2>&1 | tail -1
  check "token LM ($mode)"
done
CUDA_VISIBLE_DEVICES= $PY -c "import sys, torch; [torch.load(f, weights_only=True) for f in sys.argv[1:]]" \
  "$W/lm-joint/last.pt" "$W/tok/last.pt" "$W/spectral/last.pt" "$W/judge/last.pt"
check "checkpoints written on the GPU load where there is none (plain torch.load, no map_location)"
$UMT translate "$W/src/low/0.wav" --model "$W/tok/best.pt" --tokens -o "$W/out-tokens" --device $DEVICE | tail -1
check "translation through the tokens"

for renderer in sines wavenet; do
  start=$(date +%s.%N)
  $UMT translate umt/assets/example.flac --renderer $renderer -o "$W/example-$renderer" --device $DEVICE | tail -1
  echo "README example, every domain, $renderer: $($PY -c "print(round($(date +%s.%N) - $start, 1))") s wall"
done
$PY - "$W" <<'EOF'
import sys
from pathlib import Path
import numpy as np, soundfile as sf
for path in sorted(Path(sys.argv[1]).glob("example-*/*/*")):
    audio, rate = sf.read(path)
    print(f"{path.parent.parent.name}/{path.parent.name}: {audio.size / rate:.1f} s, peak {np.abs(audio).max():.3f}, "
          f"finite {np.isfinite(audio).all()}")
EOF
echo "all CUDA checks passed"
