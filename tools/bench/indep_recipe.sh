#!/usr/bin/env bash
# The README's commands ("The training recipe") on a benchmark in the GTA5 and Cityscapes
# layouts (e.g. one written by tools/bench/indep_streets.py): source-only, AdaBN, ST, CBST,
# CBST-SP and the oracle, each scored with `cbst eval` on the target val split, then the
# per-class table (python3; developer-time only) and the whole time taken.
#
#   tools/bench/indep_recipe.sh DATA RUN [HxW]     (HxW: the images' size, default 128x256)
#
# CBST=path/to/cbst picks the program (default build/tools/cbst).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
data=$1; run=$2; size=${3:-128x256}
cbst=${CBST:-build/tools/cbst}
src=$data/gta5; tgt=$data/cityscapes
height=${size%x*}
model="--model small-deeplabv3plus"
mkdir -p "$run"; t0=$(date +%s)
step() { echo "indep_recipe: $1"; }
step "source-only"
$cbst train --data gta5=$src --eval cityscapes=$tgt:val $model --epochs 30 --poly \
  --warmup-iters 50 --batch 4 --crop 96 --scale-range 0.5,2 --lr 0.1 \
  --color-jitter 0.2,0.2,0.2,0.05 --rare-class-sampling 0.5 --run $run/source-only > $run/source-only.log 2>&1
step "prior and AdaBN"
$cbst priors --data gta5=$src --size $size --out $run/prior.safetensors > $run/priors.log 2>&1
$cbst adabn --checkpoint $run/source-only/checkpoints/final.safetensors --data cityscapes=$tgt:train \
  --batch 4 --out $run/adabn.safetensors > $run/adabn.log 2>&1
for m in st cbst cbst-sp; do
  step "$m"
  prior=""; [ $m = cbst-sp ] && prior="--prior $run/prior.safetensors"
  $cbst adapt --source gta5=$src --target cityscapes=$tgt --eval cityscapes=$tgt:val \
    --init $run/adabn.safetensors --method $m $prior $model --rounds 3 --round-schedule poly \
    --portion 0.2,0.05,0.5 --source-portion 0.2,0.05,0.5 --epochs-per-round 1 --batch 4 --crop $height \
    --scale-range 0.5,2 --lr 0.00625 --color-jitter 0.2,0.2,0.2,0.05 --rare-class-sampling 0.5 \
    --adabn --flip --run $run/$m > $run/$m.log 2>&1
done
step "oracle"
$cbst train --data cityscapes=$tgt --eval cityscapes=$tgt:val $model --epochs 30 --poly \
  --warmup-iters 50 --batch 4 --crop 96 --scale-range 0.5,2 --lr 0.1 \
  --color-jitter 0 --rare-class-sampling 0.5 --run $run/oracle > $run/oracle.log 2>&1
for m in source-only st cbst cbst-sp oracle; do
  $cbst eval --data cityscapes=$tgt --split val $model --checkpoint $run/$m/checkpoints/final.safetensors \
    --json $run/eval-$m.json > $run/eval-$m.log 2>&1
done
$cbst eval --data cityscapes=$tgt --split val $model --checkpoint $run/adabn.safetensors \
  --json $run/eval-adabn.json > $run/eval-adabn.log 2>&1
python3 - "$run" <<'PY'
import json, os, sys
run = sys.argv[1]
names = ['source-only', 'adabn', 'st', 'cbst', 'cbst-sp', 'oracle']
short = ['road', 'side', 'build', 'wall', 'fence', 'pole', 'light', 'sign', 'veg', 'terr', 'sky',
         'pers', 'rider', 'car', 'truck', 'bus', 'train', 'motor', 'bike']
print('method       ' + ''.join('%6s' % s for s in short) + '   mIoU')
m = {}
for n in names:
    d = json.load(open(os.path.join(run, 'eval-%s.json' % n)))
    m[n] = 100 * d['miou']
    print('%-12s ' % n + ''.join('%6.1f' % (100 * c['iou']) for c in d['classes']) + '  %5.1f' % m[n])
gap = m['oracle'] - m['source-only']
holds = m['source-only'] < m['st'] < m['cbst'] <= m['cbst-sp'] < m['oracle']
print('CBST-SP closes %.0f %% of the gap (AdaBN alone %.0f %%); source < ST < CBST <= CBST-SP < oracle: %s'
      % (100 * (m['cbst-sp'] - m['source-only']) / gap, 100 * (m['adabn'] - m['source-only']) / gap,
         'holds' if holds else 'fails'))
PY
echo "indep_recipe: done in $(( $(date +%s) - t0 )) s"
