"""Training on several processes: fastai's ``learn.distrib_ctx()`` (Accelerate) and a launcher.

One process per GPU (or, for tests and laptops, per CPU with the gloo backend). Every process
runs the same :func:`amdd_kit.train.train`; fastai's ``DistributedTrainer`` wraps the model in
``DistributedDataParallel`` and each DataLoader in a ``DistributedDL`` that gives process ``r``
its own contiguous shard of the epoch's order (shuffled on rank 0 and broadcast), and its
``to_detach`` gathers predictions from every process, so metrics are computed over the whole
validation set. Launch it with any of::

    amdd-kit train --processes 2 --store S --out RUN             # this module's launch()
    torchrun --standalone --nproc_per_node 2 -m amdd_kit.cli train --store S --out RUN
    accelerate launch --multi_gpu --num_processes 2 -m amdd_kit.cli train --store S --out RUN

and in a notebook with ``accelerate.notebook_launcher(fn, args, num_processes=2)``, where ``fn``
calls ``amdd_kit.train.train`` (imports inside ``fn``; CUDA must not be touched before).

**The batch.** ``train.batch_size`` is the *effective* batch: each of ``N`` processes loads
``batch_size // N`` clips per step (it must divide), so one optimiser step sees the same
number of clips, the learning rate and schedule stay as configured and an epoch has the same
number of steps as on one process.

**What matches one process, and what cannot.** The weights start equal (DDP broadcasts rank
0's), every epoch visits the same training clips, the validation metrics are computed on all
validation clips (gathered), and rank 0 alone writes the run directory. The training
trajectory is close but not bit-identical: a step's clips are grouped into per-process
shards differently, terms computed over a batch (BatchNorm statistics, the InfoNCE and
centroid losses) see ``batch_size // N`` clips instead of ``batch_size``, and augmentation and
dropout draw from each process's own generator. On CUDA BatchNorm is synchronised
(``nn.SyncBatchNorm``); PyTorch's SyncBatchNorm does not run on the CPU, so CPU processes keep
per-process statistics. ``tests/test_distributed.py`` states the tolerance.
"""
from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from typing import Sequence

import torch
from accelerate import DistributedDataParallelKwargs
from fastai.distributed import DistributedDL
from fastai.torch_core import num_distrib, rank_distrib
from fastcore.basics import patch


def world_size() -> int:
    """How many processes train together (1 when not distributed); fastai reads WORLD_SIZE."""
    return max(num_distrib(), 1)


def is_main() -> bool:
    """True in the process that writes the run directory (global rank 0)."""
    return rank_distrib() == 0


def per_process_batch(batch_size: int, processes: int | None = None) -> int:
    """The batch each process loads so that ``processes`` of them make ``batch_size``."""
    n = world_size() if processes is None else int(processes)
    if n < 1 or batch_size % n:
        raise ValueError(f"train.batch_size={batch_size} is the effective batch and must be a "
                         f"multiple of the number of processes ({n})")
    return batch_size // n


def process_device() -> torch.device:
    """This process's device: ``cuda:LOCAL_RANK`` when CUDA is there, else the CPU."""
    if torch.cuda.is_available():
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(dev)
        return dev
    return torch.device("cpu")


def ddp_kwargs(cfg) -> list:
    """Accelerate's ``kwargs_handlers`` for DistributedDataParallel. A loss term switched off
    (weight 0, as the ablations do; w_cmffc=0 leaves the trace classifiers without gradients)
    needs ``find_unused_parameters``, which costs one more pass over the autograd graph per
    step: so it is on only then."""
    off = any(getattr(cfg.loss, f.name) == 0 for f in dataclasses.fields(cfg.loss)
              if f.name.startswith("w_")
              and (cfg.model.arch == "cad" or not f.name.startswith("w_cad")))
    return [DistributedDataParallelKwargs(find_unused_parameters=off)]


def average_bn_statistics(bns: Sequence[torch.nn.modules.batchnorm._BatchNorm]) -> None:
    """Make every process's BatchNorm population statistics the same: the pooled mean and
    variance of the per-process ones (equal shares: ``DistributedDL`` gives each process as many
    batches). Used after :class:`amdd_kit.train.PreciseBN` recomputes them from each process's
    own batches; without it the processes would validate with different networks and the
    gathered metrics would not be those of the saved weights. No-op on one process."""
    if world_size() < 2 or not torch.distributed.is_initialized():
        return
    n = world_size()
    for bn in bns:
        mean = bn.running_mean.detach().clone()
        second = bn.running_var.detach() + mean ** 2    # E[x^2] per process
        torch.distributed.all_reduce(mean)
        torch.distributed.all_reduce(second)
        mean /= n
        bn.running_mean.copy_(mean)
        bn.running_var.copy_((second / n - mean ** 2).clamp_min(0))


@patch
def _broadcast(self: DistributedDL, t, rank):
    """fastai's DistributedDL broadcasts the epoch order from rank 0 as a CUDA tensor (NCCL
    needs one); with gloo (CPU processes) the tensor stays on the CPU."""
    on_cuda = "nccl" in str(torch.distributed.get_backend())
    t = torch.tensor(t, dtype=torch.long, device="cuda" if on_cuda else "cpu")
    torch.distributed.broadcast(t, rank)
    return t.cpu().tolist()


def launch(argv: Sequence[str], processes: int) -> int:
    """Run ``amdd-kit ARGV`` on ``processes`` local processes through torchrun; returns its
    exit code. One process per GPU when CUDA is there, else CPU processes (gloo)."""
    if torch.cuda.is_available() and processes > torch.cuda.device_count():
        raise ValueError(f"--processes {processes}: only {torch.cuda.device_count()} GPU(s) here "
                         "(one process per GPU)")
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // processes)))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           f"--nproc_per_node={processes}", "-m", "amdd_kit.cli", *argv]
    return subprocess.call(cmd, env=env)
