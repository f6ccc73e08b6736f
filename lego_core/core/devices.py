"""Where computation runs: the one home of device names, their resolution and availability checks.

A device name is `auto`, `cpu`, `mps`, `cuda` or `cuda:N`. `auto` means CUDA, then MPS, then CPU.
The recipe, the trainer, the job launcher and the app all go through these functions, so a device
that is absent is refused the same way (a one-line RecipeError) before any run folder exists.
"""
from __future__ import annotations

import re

from lego_core.core.errors import RecipeError

PATTERN = r"^(auto|cpu|mps|cuda(:\d+)?)$"
_NAME = re.compile(PATTERN)


def check_name(name: str, field: str = "training.device") -> str:
    """`name` when it is a device name, else RecipeError naming the field."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise RecipeError(f"{field} is {name!r}; use one of auto, cpu, mps, cuda, cuda:N")
    return name


def cuda_count() -> int:
    """Visible CUDA GPUs (0 without a CUDA runtime)."""
    try:
        import torch

        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    except Exception:  # noqa: BLE001 - a broken CUDA runtime means no GPU
        return 0


def mps_available() -> bool:
    import torch

    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


def resolve(name: str, field: str = "training.device") -> str:
    """The concrete device for `name` on this machine (`auto` chosen here); RecipeError when the
    named device is absent (`cuda:3` on a machine with two GPUs, `mps` off a Mac)."""
    check_name(name, field)
    count = cuda_count()
    if name == "auto":
        return "cuda" if count else ("mps" if mps_available() else "cpu")
    if name.startswith("cuda"):
        if not count:
            raise RecipeError(f"{field} is '{name}' but no CUDA GPU is visible; use 'auto' or 'cpu'")
        index = int(name.split(":")[1]) if ":" in name else 0
        if index >= count:
            raise RecipeError(f"{field} is '{name}' but this machine has {count} CUDA GPU(s) "
                              f"(cuda:0..cuda:{count - 1}); pick one of those, 'cuda' or 'cpu'")
    if name == "mps" and not mps_available():
        raise RecipeError(f"{field} is 'mps' but MPS is not available; use 'auto' or 'cpu'")
    return name


def torch_device(name: str, field: str = "training.device"):
    """`resolve(name)` as a torch.device."""
    import torch

    return torch.device(resolve(name, field))


def choices() -> list[dict]:
    """Training targets on this machine for a UI: CPU, each CUDA GPU, and all GPUs together
    (torchrun). Each entry: label, device (a device name), nproc."""
    options = [{"label": "CPU", "device": "cpu", "nproc": 1}]
    count = cuda_count()
    import torch

    for i in range(count):
        options.append({"label": f"GPU {i}: {torch.cuda.get_device_name(i)}", "device": f"cuda:{i}", "nproc": 1})
    if count > 1:
        options.append({"label": f"All {count} GPUs (torchrun, DDP)", "device": "cuda", "nproc": count})
    return options


def cpu_bf16() -> bool:
    """The CPU runs bfloat16 matrix products natively (AVX512-BF16 or AMX), so CPU autocast pays."""
    import torch

    cpu = getattr(torch, "cpu", None)
    return bool(cpu is not None and any(getattr(cpu, probe, lambda: False)()
                                        for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")))
