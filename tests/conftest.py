"""Shared test setup: one thread per process, as in production jobs."""

import torch

torch.set_num_threads(1)
