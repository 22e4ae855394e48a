"""Progressive resizing inside one `fit_phases` call on hymenoptera: 128 px, then 224 px.

    python tests/vision/phases_resize_script.py DATA OUT [--kill-at EPOCH BATCH] [--resume]

Trains a pretrained EfficientNet-Lite0 (body frozen) through two phases (fractional: a short test),
each with its own data, with `checkpoint="run"`; `--kill-at` SIGKILLs this process before that
training batch (no cleanup, no flush, as the kernel would), `--resume` continues from the checkpoint.
Writes OUT/weights.safetensors and OUT/rows.json (the epoch table without times) at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
from pathlib import Path

import torch
from safetensors.torch import save_file

import quickfit as qf
from quickfit.vision import ImageDataLoaders, aug_transforms, vision_learner


class Kill(qf.Callback):
    def __init__(self, epoch: int, batch: int):
        self.at = (epoch, batch)

    def before_batch(self, learn):
        if learn.training and (learn.epoch, learn.iter) == self.at:
            os.kill(os.getpid(), signal.SIGKILL)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("data")
    parser.add_argument("out")
    parser.add_argument("--kill-at", type=int, nargs=2, default=None)
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    qf.set_seed(0)
    dls = {
        size: ImageDataLoaders.from_folder(
            args.data, valid="val", size=size, bs=32, batch_tfms=aug_transforms(), num_workers=0
        )
        for size in (128, 224)
    }
    learn = vision_learner(dls[128], "efficientnet_lite0", path=args.out, progress=False)
    phases = [
        qf.Phase(0.5, lr=qf.combined_cos(0.3, 2e-4, 5e-3, 1e-3), dls=dls[128]),  # half an epoch at 128 px
        qf.Phase(1.25, lr=1e-3 * qf.SchedCos(1, 0.01), dls=dls[224]),  # then 224 px: 1 epoch and a quarter
    ]
    cbs = [Kill(*args.kill_at)] if args.kill_at else []
    learn.fit_phases(phases, cbs=cbs, checkpoint="run", resume=args.resume)
    out = Path(args.out)
    save_file({k: v.contiguous() for k, v in learn.model.state_dict().items()}, str(out / "weights.safetensors"))
    rows = [row[:-1] for row in learn.recorder.values]
    (out / "rows.json").write_text(json.dumps({"rows": rows, "size": learn.dls.size}))


if __name__ == "__main__":
    main()
