#!/usr/bin/env bash
# The OpenKBP recipe on one GPU without SimpleITK (scripts/TRAINING_OPENKBP.md): the spinal cord and the
# esophagus, each from scratch and continued from the shipped model, four trainings sharing the GPU.
#   scripts/train_openkbp_gpu.sh PACKS WORK [MINUTES] [DEVICE]
# PACKS holds pack_spinal_cord and pack_esophagus (`train_openkbp.py --selection 16|8 --pack`); each training
# writes WORK/<organ>-<start>/models/<organ>-vN, its log beside it. Then, where SimpleITK is, per organ:
#   train_openkbp.py --organ ORGAN --work WORK/<organ>-<start> --selection 16|8 --resume   (held-out table, ship)
set -euo pipefail
packs=${1:?packs folder} work=${2:?work folder} minutes=${3:-6} device=${4:-cuda}
cd "$(dirname "$0")/.."
export PYTHONPATH=OrganSegLib/src:scripts PYTHONUNBUFFERED=1
mkdir -p "$work"
train() {  # name organ lr [--parent PACKAGE]
  local name=$1 organ=$2 lr=$3; shift 3
  # time, not steps, ends a run; a run past its time plus loading is killed (checkpoints every --val-every)
  timeout -s KILL "$(python3 -c "print(int($minutes * 60 + 180))")" \
    python3 scripts/train_from_pack.py --organ "$organ" --pack "$packs/pack_$organ" --work "$work/$name" \
    --device "$device" --workers 2 --threads 1 --minutes "$minutes" --steps 1000000 --batch-size 64 --lr "$lr" \
    --val-every 1500 --patience 1000 "$@" > "$work/$name.log" 2>&1
}
bundled=OrganSegLib/src/organseg/bundled/models
train spinal_cord-scratch spinal_cord 2e-3 &
train spinal_cord-continued spinal_cord 5e-4 --parent "$bundled/spinal_cord-v3" &
train esophagus-scratch esophagus 2e-3 &
train esophagus-continued esophagus 5e-4 --parent "$bundled/esophagus-v2" &
status=0
for job in $(jobs -p); do wait "$job" || status=1; done
exit $status
