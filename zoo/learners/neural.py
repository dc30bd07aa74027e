"""Neural learners trained with Lightning: ``flat-mlp``, ``equivariant`` (:mod:`zoo.learners.nets`)
and ``nfn-np`` / ``nfn-hnp`` (:mod:`zoo.learners.nfn_nets`, the official ``nfn`` layers).

Training: AdamW on MSE (standardised regression targets) or soft cross-entropy
(classification; soft because MixUp mixes one-hot targets). Augmentations run on the fly,
per sample, every epoch; ``mixup-match`` first aligns every training network once to a
reference of its shape (:func:`zoo.learners.augment.align_to_reference`). Early stopping on
the validation networks' loss (never augmented); the best validation state is restored at
the end. Deterministic given ``seed``; ``accelerator='auto'`` uses a GPU when one is present.
"""

from __future__ import annotations

import copy
import logging
import warnings
from typing import Any

import numpy as np
import torch
from torch import Tensor

from zoo.learners.augment import Augmenter, align_to_reference
from zoo.learners.dataset import WeightDataset, shape_key
from zoo.learners.nets import FlatMLP, NeuronSetNet, Padder

#: Neural learner names (``arch`` of :class:`NeuralLearner`).
NEURAL_ARCHS = ("flat-mlp", "equivariant", "nfn-np", "nfn-hnp")


class _TrainSet(torch.utils.data.Dataset):
    """Padded (and, for training, augmented) networks with float targets."""

    def __init__(self, params: list[dict[str, Tensor]], targets: Tensor, padder: Padder, augmenter: Augmenter | None,
                 align_once: bool = True):
        self.params, self.targets, self.padder, self.augmenter = params, targets, padder, augmenter
        self.groups: dict[Any, list[int]] = {}
        for i, p in enumerate(params):
            self.groups.setdefault(shape_key(p), []).append(i)
        if augmenter is not None and augmenter.matches and align_once:
            # one weight matching per network, not one per sampled pair per epoch
            self.params = align_to_reference(params, self.groups, np.random.default_rng(augmenter.seed))
            augmenter.prealigned = True

        self.cache: dict[int, dict[str, Tensor]] | None = None
        if augmenter is None or not augmenter.steps:
            # no augmentation: transform every network once, not once per epoch
            self.cache = {i: padder(p) for i, p in enumerate(self.params)}

    def __len__(self) -> int:
        return len(self.params)

    def batch(self, idx: list[int]) -> tuple[dict[str, Tensor], Tensor]:
        """The collated batch of samples ``idx`` (one shape)."""
        return torch.utils.data.default_collate([self[i] for i in idx])

    def __getitem__(self, i: int) -> tuple[dict[str, Tensor], Tensor]:
        if self.cache is not None:
            return self.cache[i], self.targets[i]
        p, y = self.params[i], self.targets[i]
        if self.augmenter is not None and self.augmenter.steps:
            group = self.groups[shape_key(p)]

            def partner(rng: np.random.Generator) -> tuple[dict[str, Tensor], Tensor]:
                j = group[rng.integers(len(group))]
                return self.params[j], self.targets[j]

            p, y = self.augmenter(p, y, partner)
        return self.padder(p), y


class ShapeBatches(torch.utils.data.Sampler):
    """Batches of networks of one shape (no padding needed), reshuffled every epoch from ``seed``."""

    def __init__(self, groups: dict[Any, list[int]], batch_size: int, seed: int):
        self.groups, self.batch_size, self.seed, self.epoch = list(groups.values()), batch_size, seed, 0

    def __iter__(self):
        rng = np.random.default_rng([self.seed, self.epoch])
        self.epoch += 1
        batches = [list(g[i: i + self.batch_size]) for g in (rng.permutation(g).tolist() for g in self.groups)
                   for i in range(0, len(g), self.batch_size)]
        for k in rng.permutation(len(batches)):
            yield batches[k]

    def __len__(self) -> int:
        return sum(-(-len(g) // self.batch_size) for g in self.groups)


def _module_class():
    import lightning as L

    class WeightSpaceModule(L.LightningModule):
        def __init__(self, net: torch.nn.Module, classification: bool, lr: float, weight_decay: float):
            super().__init__()
            self.net, self.classification, self.lr, self.weight_decay = net, classification, lr, weight_decay

        def loss(self, pred: Tensor, y: Tensor) -> Tensor:
            if self.classification:
                return -(y * torch.log_softmax(pred, -1)).sum(-1).mean()
            return torch.nn.functional.mse_loss(pred, y)

        def training_step(self, batch, batch_idx):
            x, y = batch
            loss = self.loss(self.net(x), y)
            self.log("train_loss", loss, on_epoch=True, on_step=False, batch_size=len(y))
            return loss

        def validation_step(self, batch, batch_idx):
            x, y = batch
            self.log("val_loss", self.loss(self.net(x), y), on_epoch=True, batch_size=len(y))

        def configure_optimizers(self):
            return torch.optim.AdamW(self.parameters(), lr=self.lr, weight_decay=self.weight_decay)

    class KeepBest(L.Callback):
        """Remember the weights of the best validation epoch and restore them at the end."""

        def __init__(self) -> None:
            self.best, self.state, self.epoch = float("inf"), None, -1

        def on_validation_end(self, trainer, pl_module):
            if trainer.sanity_checking:
                return
            v = float(trainer.callback_metrics.get("val_loss", float("inf")))
            if v < self.best:
                self.best, self.epoch = v, trainer.current_epoch
                self.state = copy.deepcopy(pl_module.state_dict())

        def on_fit_end(self, trainer, pl_module):
            if self.state is not None:
                pl_module.load_state_dict(self.state)

    return L, WeightSpaceModule, KeepBest


class NeuralLearner:
    """``arch`` one of :data:`NEURAL_ARCHS`; ``fit(data, y, val_data, val_y)`` / ``predict`` / ``score``.

    ``score`` is Kendall τ (regression) or accuracy (classification). ``d``: neuron
    embedding width of ``equivariant``; ``channels`` / ``hidden``: the NFN's equivariant
    channels and head width (``nfn-*``); ``stats``: ``equivariant`` also reads the
    per-tensor statistics (invariant); ``align_once``: ``mixup-match`` aligns every network
    once (False: re-match every sampled pair, the old, slow way — kept to measure it).
    """

    def __init__(self, arch: str = "equivariant", task_kind: str = "regression", augment: str = "none",
                 seed: int = 0, max_epochs: int = 60, batch_size: int = 32, lr: float = 1e-3,
                 weight_decay: float = 1e-4, patience: int = 10, activation: str = "relu",
                 accelerator: str = "auto", d: int = 32, channels: tuple[int, ...] = (16, 16, 4), hidden: int = 256,
                 stats: bool = False, align_once: bool = True):
        self.arch = arch
        self.task_kind = task_kind
        self.augment = augment
        self.seed = seed
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.patience = patience
        self.activation = activation
        self.accelerator = accelerator
        self.d = d
        self.channels = channels
        self.hidden = hidden
        self.stats = stats
        self.align_once = align_once

    def _targets(self, y: np.ndarray) -> Tensor:
        if self.task_kind == "classification":
            idx = np.searchsorted(self.classes_, np.asarray(y))
            return torch.from_numpy(np.eye(len(self.classes_), dtype=np.float32)[idx])
        return torch.from_numpy(((np.asarray(y, dtype=np.float64) - self.y_mean_) / self.y_std_).astype(np.float32)[:, None])

    def build_net(self, padder: Padder) -> torch.nn.Module:
        """A freshly initialised net (seeded by ``seed``) for inputs shaped like ``padder``'s."""
        torch.manual_seed(self.seed)
        out_dim = len(self.classes_) if self.task_kind == "classification" else 1
        if self.arch == "flat-mlp":
            return FlatMLP(padder, out_dim)
        if self.arch in ("nfn-np", "nfn-hnp"):
            from zoo.learners.nfn_nets import NFNPredictor

            return NFNPredictor(padder, out_dim, mode=self.arch[4:], channels=tuple(self.channels), hidden=self.hidden)
        if self.arch != "equivariant":
            raise ValueError(f"unknown neural learner {self.arch!r}; one of {NEURAL_ARCHS}")
        return NeuronSetNet(padder, out_dim, d=self.d, stats=self.stats)

    def fit(self, data: WeightDataset, y: np.ndarray, val_data: WeightDataset | None = None,
            val_y: np.ndarray | None = None) -> NeuralLearner:
        L, Module, KeepBest = _module_class()
        for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
            logging.getLogger(name).setLevel(logging.ERROR)
        warnings.filterwarnings("ignore", ".*does not have many workers.*")
        warnings.filterwarnings("ignore", ".*number of training batches.*")
        warnings.filterwarnings("ignore", ".*`srun` command is available.*")
        warnings.filterwarnings("ignore", ".*LeafSpec.*")
        L.seed_everything(self.seed, workers=True, verbose=False)
        y = np.asarray(y)
        if self.task_kind == "classification":
            self.classes_ = np.unique(y if val_y is None else np.concatenate([y, np.asarray(val_y)]))
        else:
            self.y_mean_, self.y_std_ = float(np.mean(y)), float(np.std(y)) or 1.0
        self.padder_ = Padder(data.params, pad=self.arch == "flat-mlp", stats=self.stats and self.arch == "equivariant")
        net = self.build_net(self.padder_)
        self.n_params_ = sum(p.numel() for p in net.parameters())
        aug = Augmenter(self.augment, self.activation, seed=self.seed)
        train = _TrainSet(data.params, self._targets(y), self.padder_, aug, self.align_once)
        train_dl = torch.utils.data.DataLoader(train, batch_sampler=ShapeBatches(train.groups, self.batch_size, self.seed))
        callbacks: list[Any] = []
        val_dl = None
        if val_data is not None and len(val_data):
            val = _TrainSet(val_data.params, self._targets(val_y), self.padder_, None)
            val_dl = torch.utils.data.DataLoader(val, batch_sampler=ShapeBatches(val.groups, 256, self.seed))
            callbacks = [L.pytorch.callbacks.EarlyStopping("val_loss", patience=self.patience), KeepBest()]
        module = Module(net, self.task_kind == "classification", self.lr, self.weight_decay)
        trainer = L.Trainer(max_epochs=self.max_epochs, accelerator=self.accelerator, devices=1, logger=False,
                            enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                            callbacks=callbacks, deterministic=True, num_sanity_val_steps=0)
        trainer.fit(module, train_dl, val_dl)
        self.net_ = module.net.cpu().eval()
        self.epochs_run_ = trainer.current_epoch
        self.best_epoch_ = next((c.epoch for c in callbacks if isinstance(c, KeepBest)), self.epochs_run_)
        return self

    @torch.no_grad()
    def predict_raw(self, data: WeightDataset) -> np.ndarray:
        """Net outputs (standardised regression value or class logits) ``[n, out]``."""
        self.net_.eval()
        groups: dict[Any, list[int]] = {}
        for i, p in enumerate(data.params):
            groups.setdefault(shape_key(p), []).append(i)
        out = None
        for idx in groups.values():
            for start in range(0, len(idx), 256):
                chunk = idx[start: start + 256]
                x = torch.utils.data.default_collate([self.padder_(data.params[i]) for i in chunk])
                y = self.net_(x).numpy()
                if out is None:
                    out = np.zeros((len(data), y.shape[1]), dtype=np.float32)
                out[chunk] = y
        return out

    def predict(self, data: WeightDataset) -> np.ndarray:
        raw = self.predict_raw(data)
        if self.task_kind == "classification":
            return self.classes_[raw.argmax(1)]
        return raw[:, 0] * self.y_std_ + self.y_mean_

    def score(self, data: WeightDataset, y: np.ndarray) -> float:
        from scipy.stats import kendalltau

        pred = self.predict(data)
        if self.task_kind == "classification":
            return float(np.mean(pred == np.asarray(y)))
        return float(kendalltau(pred, y).statistic)
