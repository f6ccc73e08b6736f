"""Where a training process stands in a torchrun run (rank, world, device), handing rank 0's weights
to every rank (the best checkpoint lives with rank 0 alone), and leaving the process group without
the gloo deadlock at exit."""
from __future__ import annotations

import gc
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from lego_core.core import devices


@dataclass
class Dist:
    """Where this process stands in a (possibly) distributed run."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1


def init_distributed(device_name: str) -> tuple[Dist, torch.device]:
    """Join the process group torchrun set up (if any) and pick this process's device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    info = Dist(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0")))
    device = devices.torch_device(device_name)  # an absent device is a RecipeError
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", info.local_rank)
        torch.cuda.set_device(device)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return info, device


def broadcast_weights(model: torch.nn.Module) -> None:
    """Every rank's model takes rank 0's weights (the state_dict a checkpoint holds), so all ranks
    can evaluate the best checkpoint that rank 0 alone loaded."""
    with torch.no_grad():
        for tensor in model.state_dict().values():
            dist.broadcast(tensor, src=0)


def leave_process_group() -> None:
    """Destroy the process group once nothing else holds it. A DDP wrapper's reducer holds the group
    and frees it without releasing the GIL, while gloo's worker threads need the GIL to finish: a
    deadlock at exit in about 1 two-process run in 5. Dropped first, the group dies here, GIL released."""
    if dist.is_initialized():
        gc.collect()  # the DDP wrapper sits in reference cycles
        dist.destroy_process_group()
