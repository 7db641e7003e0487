#!/usr/bin/env bash
# The serving install on arm64 (a Jetson / Raspberry Pi class robot computer), tried for real under
# emulation: Debian's qemu-user-static runs an arm64 Debian root made by debootstrap, where the
# serving install comes from PyPI's aarch64 wheels and `hybrid serve` predicts the same files as
# on this machine. Needs root, and Debian's package registry and PyPI (docs/robot.md).
#
#   bash bench/arm64_trial.sh FP32.onnx INT8.onnx IMAGES_DIR VIDEO [ROOT_DIR]
#
# Writes $ROOT_DIR/opt/trial/{arm,x86}_{fp32,int8,video,video32}/ and prints the comparison. Emulation
# is slow (a 480 px image takes seconds): a few images and a short video are enough.
set -euo pipefail
fp32=$1 int8=$2 images=$3 video=$4 root=${5:-/tmp/arm64}
repo=$(cd "$(dirname "$0")/.." && pwd)

command -v debootstrap >/dev/null && [ -x /usr/bin/qemu-aarch64-static ] ||
    apt-get install -y qemu-user-static debootstrap binfmt-support
[ -e /proc/sys/fs/binfmt_misc/register ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
update-binfmts --enable qemu-aarch64
[ -x "$root/usr/bin/python3" ] ||
    debootstrap --arch=arm64 --include=python3,python3-venv,ca-certificates bookworm "$root" http://deb.debian.org/debian
# No /proc or /sys in the root: they would describe this x86 CPU, and onnxruntime's cpuinfo then
# crashes under emulation (seen: a segmentation fault on import); without them it warns, and runs.
cp /etc/resolv.conf "$root/etc/resolv.conf"
cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"  # this sandbox's CA too

rm -rf "$root/opt/hybrid" "$root/opt/trial" && mkdir -p "$root/opt/hybrid" "$root/opt/trial"
git -C "$repo" archive HEAD | tar -x -C "$root/opt/hybrid"
cp "$fp32" "$root/opt/trial/fp32.onnx" && cp "$int8" "$root/opt/trial/int8.onnx"
cp -r "$images" "$root/opt/trial/images" && cp "$video" "$root/opt/trial/video.mp4"

# the robot install of docs/robot.md, inside the arm64 root
chroot "$root" bash -c 'set -e; cd /opt/hybrid
    [ -x /opt/venv-serve/bin/python ] || python3 -m venv /opt/venv-serve
    /opt/venv-serve/bin/pip install --quiet --cert /etc/ssl/certs/ca-certificates.crt -r requirements-serve.txt
    /opt/venv-serve/bin/pip install --quiet --cert /etc/ssl/certs/ca-certificates.crt --no-deps .
    uname -m; du -sm /opt/venv-serve
    /opt/venv-serve/bin/python -c "import torch" 2>&1 | tail -1
    /opt/venv-serve/bin/python -c "import platform, onnxruntime, numpy, PIL, av; print(platform.machine(), \"onnxruntime\", onnxruntime.__version__, \"numpy\", numpy.__version__, \"Pillow\", PIL.__version__, \"av\", av.__version__)"'
for run in fp32:fp32.onnx:images int8:int8.onnx:images video:int8.onnx:video.mp4 video32:fp32.onnx:video.mp4; do
    IFS=: read -r name model input <<<"$run"
    chroot "$root" /opt/venv-serve/bin/hybrid serve "/opt/trial/$model" "/opt/trial/$input" --out "/opt/trial/arm_$name" 2>&1 |
        grep -v cpuinfo | tail -1
    "$repo/.venv-serve/bin/hybrid" serve "$root/opt/trial/$model" "$root/opt/trial/$input" --out "$root/opt/trial/x86_$name" 2>/dev/null
done
"$repo/.venv/bin/python" - "$root/opt/trial" <<'EOF'
import sys
from pathlib import Path

import numpy as np
import pandas as pd

trial = Path(sys.argv[1])
for name, table, key in (("fp32", "predictions.csv", "Filename"), ("int8", "predictions.csv", "Filename"),
                         ("video", "frames.csv", "time_s"), ("video32", "frames.csv", "time_s")):
    arm, x86 = (pd.read_csv(trial / f"{side}_{name}" / table) for side in ("arm", "x86"))
    assert (arm[key] == x86[key]).all()
    classes = [c for c in arm.columns if c not in ("Filename", "video", "frame_index", "time_s", "prediction")]
    delta = np.abs(arm[classes].to_numpy() - x86[classes].to_numpy()).max()
    line = f"{name}: {len(arm)} rows, max |delta p| arm64 vs x86 {delta:.2g}, decisions equal {100 * (arm.prediction == x86.prediction).mean():.1f}%"
    if table == "frames.csv":
        events = [pd.read_csv(trial / f"{side}_{name}" / "events.csv") for side in ("arm", "x86")]
        same = events[0][["label", "start_s", "end_s"]].equals(events[1][["label", "start_s", "end_s"]])
        line += f"; events {len(events[0])} vs {len(events[1])}, same segments: {same}"
    print(line)
EOF
