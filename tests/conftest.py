"""Shared test setup: one thread per process, as in production jobs."""

import torch

torch.set_num_threads(1)


def mount_small_tmpfs(folder, size: str):
    """Mount a tmpfs of ``size`` (e.g. '3m') at ``folder`` and yield it; unmount afterwards.

    Needs root; skips with the reason where it cannot mount (the full-disk tests).
    """
    import os
    import subprocess

    import pytest

    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    folder.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip() or proc.returncode}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)
