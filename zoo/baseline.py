"""Reference trainers for one model at a time: the plain PyTorch loop and Lightning.

They use the same init, data subset and data order as :mod:`zoo.train`, and
``torch.optim`` instead of our batched optimizer, so they serve both as the
independent check of population training and as the baseline of the throughput
benchmark.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from zoo.data import Dataset, load_dataset
from zoo.models import build_module, init_params
from zoo.train import data_order_streams, train_subset


def make_optimizer(spec: Mapping[str, Any], params) -> torch.optim.Optimizer:
    """``torch.optim`` optimizer matching the spec (L2 weight decay as in zoo.optim)."""
    if spec["optimizer"] == "sgd":
        return torch.optim.SGD(params, lr=spec["lr"], momentum=spec["momentum"], weight_decay=spec["weight_decay"])
    return torch.optim.Adam(params, lr=spec["lr"], weight_decay=spec["weight_decay"])


def train_plain(spec: Mapping[str, Any], dataset: Dataset | None = None) -> tuple[torch.nn.Module, float]:
    """Train one model with a plain loop; return the module and its final test accuracy."""
    ds = dataset or load_dataset(spec["dataset"], spec.get("dataset_options"))
    module = build_module(spec, ds.input_shape, ds.n_classes, init_params(spec, ds.input_shape, ds.n_classes))
    opt = make_optimizer(spec, module.parameters())
    x, y = torch.from_numpy(ds.x_train), torch.from_numpy(ds.y_train)
    subset = train_subset(spec, len(x))
    rng = data_order_streams([spec])[0]
    for _ in range(spec["epochs"]):
        order = subset[rng.permutation(len(subset))]
        for start in range(0, len(order), spec["batch_size"]):
            idx = torch.from_numpy(order[start : start + spec["batch_size"]])
            loss = F.cross_entropy(module(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        acc = (module(torch.from_numpy(ds.x_test)).argmax(-1) == torch.from_numpy(ds.y_test)).float().mean().item()
    return module, acc


def train_lightning(spec: Mapping[str, Any], dataset: Dataset | None = None) -> float:
    """Train one model with ``lightning.Trainer`` (CPU); return its final test accuracy."""
    import lightning as L
    from torch.utils.data import DataLoader, Subset, TensorDataset

    ds = dataset or load_dataset(spec["dataset"], spec.get("dataset_options"))

    class Wrapped(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = build_module(spec, ds.input_shape, ds.n_classes, init_params(spec, ds.input_shape, ds.n_classes))

        def training_step(self, batch, _):
            xb, yb = batch
            return F.cross_entropy(self.net(xb), yb)

        def configure_optimizers(self):
            return make_optimizer(spec, self.parameters())

    train_set = Subset(TensorDataset(torch.from_numpy(ds.x_train), torch.from_numpy(ds.y_train)),
                       train_subset(spec, len(ds.x_train)).tolist())
    gen = torch.Generator().manual_seed(int(spec["seed"]))
    loader = DataLoader(train_set, batch_size=spec["batch_size"], shuffle=True, generator=gen)
    model = Wrapped()
    trainer = L.Trainer(max_epochs=spec["epochs"], accelerator="cpu", devices=1, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(model, loader)
    with torch.no_grad():
        pred = model.net(torch.from_numpy(ds.x_test)).argmax(-1).numpy()
    return float(np.mean(pred == ds.y_test))
