"""Provenance of a record: git commit and dirty flag, package versions, device and CPU names, UTC time."""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
from datetime import UTC, datetime
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any


def _package_version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


@cache
def _git_state() -> tuple[str | None, bool | None]:
    source = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(source), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(source), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None, None
    return commit, bool(dirty)


def cpu_name() -> str:
    """The CPU model name (``/proc/cpuinfo`` on Linux, else ``platform.processor()``)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def device_name(device: str) -> str:
    """A human name of the device a cell ran on: the GPU's name or the CPU model."""
    if device.startswith("cuda"):
        import torch

        if torch.cuda.is_available():
            return torch.cuda.get_device_name(torch.device(device))
    return cpu_name()


def provenance(device: str = "cpu") -> dict[str, Any]:
    """Where and with what a record was computed: git commit and dirty flag, versions, device,
    the SIMD kernels torch dispatches on this CPU (``cpu_capability``, e.g. ``"AVX2"``), threads."""
    import torch

    commit, dirty = _git_state()
    return {
        "git_commit": commit,
        "git_dirty": dirty,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": {
            name: _package_version(dist)
            for name, dist in (
                ("wbench", "wbench"), ("torch", "torch"), ("pot", "POT"), ("geomloss", "geomloss"),
                ("numpy", "numpy"), ("torchdiffeq", "torchdiffeq"), ("scikit-learn", "scikit-learn"),
            )
        },
        "device": device,
        "device_name": device_name(device),
        # CPU names are generic on cloud machines ("AMD EPYC" covers AVX2-only and AVX-512 parts),
        # and the kernel set decides summation orders, hence bit-for-bit reproducibility.
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
    }


def utc_now() -> str:
    """The current UTC time in ISO 8601, seconds precision."""
    return datetime.now(UTC).replace(microsecond=0).isoformat()


