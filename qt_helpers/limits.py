"""Upper limits checked before any work: a run's memory, estimated from its size, against this machine's.

The estimate was measured on a CPU (peak RSS of `python -m qt_helpers train`, torch 2.x): about 0.7 GB for
Python and torch, the dataset as float32 (plus its pack), the CNN's activations of a batch, and the native
simulator's state vectors (16 of 2^n complex numbers) and window matrices (64 KiB per block at 13 qubits).
"""
from __future__ import annotations

import os

from .data import INFO
from .native import default_window, window_plan

GiB = 2**30
BASE = 0.7e9  # python, torch and qt_helpers imported


def qnn_bytes(n_qubits: int, blocks: int) -> int:
    """Bytes the native simulator holds while training: state vectors, and per block its window matrices
    with their autograd copies."""
    plan = window_plan(n_qubits, default_window(n_qubits))
    per_block = 8 * len(plan) * 4 ** plan[0][1] * 8  # complex64 matrices, about 8 copies (measured)
    return 16 * 2**n_qubits * 8 + blocks * per_block


def run_bytes(dataset: str, n_qubits: int | None = None, blocks: int = 0, batch_size: int = 128,
              n_images: int | None = None) -> int:
    """Estimated peak memory of one training run (bytes)."""
    fact = INFO[dataset]
    images, pixels = fact.n_train + fact.n_test, fact.shape[0] * fact.shape[1] * fact.shape[2]
    images = images if n_images is None else n_images
    qnn = 0 if n_qubits is None else qnn_bytes(n_qubits, blocks)
    return int(BASE + images * pixels * 5 + batch_size * pixels * 4 * 64 + qnn)


def machine_memory() -> tuple[int, int]:
    """(bytes available now, total bytes) of this machine: psutil's where installed, else sysconf's."""
    try:
        import psutil

        vm = psutil.virtual_memory()
        return vm.available, vm.total
    except ImportError:
        page = os.sysconf("SC_PAGE_SIZE")
        return os.sysconf("SC_AVPHYS_PAGES") * page, os.sysconf("SC_PHYS_PAGES") * page


def gib(n: float) -> str:
    return f"{n / GiB:,.1f} GiB"


def check_memory(need: int, what: str) -> None:
    """Raise MemoryError (one line, with the numbers) when `need` bytes exceed the memory available now."""
    available, total = machine_memory()
    if need > available:
        msg = (f"{what} needs about {gib(need)} of memory; this machine has {gib(available)} available "
               f"(of {gib(total)})")
        raise MemoryError(msg)
