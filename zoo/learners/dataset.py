"""``WeightDataset``: a zoo's ``weights`` Parquet read straight into per-layer torch tensors.

One sample = one model at one checkpoint epoch: an ordered ``{tensor name: Tensor}``
(names as in :func:`zoo.models.param_shapes`, in network order: ``layers.0.weight``,
``layers.0.bias``, … — the population checkpoints store them alphabetically, bias first).
``meta`` is a pandas frame with one row per sample: the ``models`` columns (every
hyperparameter), the ``metrics`` of that epoch, and ``phase`` when ``phases.parquet``
exists. No pickles: only Arrow buffers → NumPy → torch.

For learners (public as ``zoo.WeightDataset``):

- :meth:`WeightDataset.targets` / :meth:`WeightDataset.with_task` — the target of a task
  (``test_acc``, ``ggap``, ``epoch``, ``log_<axis>``, ``phase``) per sample;
- :meth:`WeightDataset.split` — the recorded by-model split (protocol, split seed);
- :func:`collate` — a batch of networks of *mixed widths*, zero-padded (a zero unit changes
  no logit) with a mask of the real units;
- :meth:`WeightDataset.to_stacked` — NFN / DWS layout per shape group: per layer weights
  ``[B, c, n_out, n_in]`` (``[B, c, n_out, n_in, kh, kw]`` for convolutions) and biases
  ``[B, c, n_out]`` in layer order, ``c = 1``; :meth:`StackedGroup.wsfeat` wraps them as
  ``nfn.common.WeightSpaceFeatures``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from zoo.errors import DataError, SpecError
from zoo.store import read_table

_INDEX = re.compile(r"^(layers|convs)\.(\d+)\.(weight|bias)$")


def tensor_sort_key(name: str) -> tuple[int, int, int]:
    """Network order: ``layers.0.weight, layers.0.bias, layers.1.weight, …`` (convs before head)."""
    m = _INDEX.match(name)
    if m:
        return (0, int(m.group(2)), 0 if m.group(3) == "weight" else 1)
    return (1, 0, 0 if name.endswith("weight") else 1)


def layer_pairs(names: Iterable[str]) -> list[tuple[str, str]]:
    """``[(weight, bias), …]`` of the network's layers in order (last = classifier).

    The hidden units between layer ``l`` and ``l+1`` (rows of weight ``l``, columns of
    weight ``l+1``) are the permutable neurons (MLP) or channels (CNN).
    """
    names = list(names)
    odd = [n for n in names if not (_INDEX.match(n) or n in ("head.weight", "head.bias"))]
    if odd:
        raise SpecError(f"tensor {odd[0]!r}: hidden-unit symmetries and the neural learners support plain "
                        "mlp and cnn zoos only; use a statnn-* learner (and noise/dropout/sparsify/mixup) here")
    ws = sorted((n for n in names if n.endswith(".weight")), key=tensor_sort_key)
    return [(w, w[: -len("weight")] + "bias") for w in ws]


#: ``epochs`` of the loaders: a list of checkpoint epochs, ``"final"`` (each model's last
#: checkpoint; the NFN protocol's samples) or ``None`` (every checkpoint).
Epochs = Sequence[int] | Literal["final"] | None


class WeightDataset(torch.utils.data.Dataset):
    """Samples ``(model_id, epoch)`` → ``{tensor: Tensor}``, with a ``meta`` frame of targets.

    Build it with :meth:`from_zoo` (a ``data/zoos/<zoo>`` folder), :meth:`from_files` or
    :meth:`from_tables`. ``dataset[i]`` is the ordered tensor dict of sample ``i``;
    ``spec(i)`` its model spec (what :func:`zoo.models.build_module` takes).

    Example (the NFN layout, fed to the official ``nfn`` layers)::

        data = zoo.WeightDataset.from_zoo("data/zoos/digits-mlp", epochs="final")
        y = data.targets("test_acc")
        for group in data.to_stacked(group_by="shape"):       # one group per architecture shape
            layer = nfn.layers.HNPLinear(group.network_spec(), in_channels=1, out_channels=8)
            features = layer(group.wsfeat())                  # WeightSpaceFeatures, [B, 8, n_out, n_in] per layer
    """

    def __init__(self, params: Sequence[dict[str, Tensor]], meta: Any, specs: Mapping[str, dict[str, Any]]):
        self.params = list(params)
        self.meta = meta.reset_index(drop=True)
        self.specs = dict(specs)
        if len(self.params) != len(self.meta):
            raise ValueError("params and meta must have one row per sample")

    def __len__(self) -> int:
        return len(self.params)

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        return self.params[i]

    def spec(self, i: int) -> dict[str, Any]:
        """The flat model spec of sample ``i`` (``build_module`` takes it)."""
        return self.specs[self.meta["model_id"].iat[i]]

    def subset(self, index: Sequence[int] | np.ndarray) -> WeightDataset:
        """The samples at ``index`` (tensors shared, not copied)."""
        index = np.asarray(index, dtype=np.int64)
        return WeightDataset([self.params[i] for i in index], self.meta.iloc[index], self.specs)

    # -- targets and splits -------------------------------------------------------------
    def targets(self, task: str) -> np.ndarray:
        """The target of ``task`` for every sample (see :mod:`zoo.learners.tasks`; NaN/None where missing)."""
        from zoo.learners.tasks import task_target

        return task_target(self.meta, task)

    def with_task(self, task: str) -> TaskDataset:
        """A torch ``Dataset`` of ``(tensors, target)`` pairs for ``task`` (batch it with :func:`collate`)."""
        return TaskDataset(self, self.targets(task))

    def split(self, split_seed: int = 0, protocol: str = "nfn", split: str = "model") -> np.ndarray:
        """The side (``train``/``val``/``test``) of every sample under ``protocol`` and ``split_seed``.

        Exactly the split the harness records in ``predictions.parquet`` when it runs on the
        full dataset (it depends only on the split seed and the model ids; see
        :mod:`zoo.learners.splits`).
        """
        from zoo.learners.splits import protocol_rows

        return protocol_rows(self.meta, split, split_seed, protocol)

    # -- layouts for learners --------------------------------------------------------------
    def to_stacked(self, group_by: Literal["shape"] | None = "shape",
                   index: Sequence[int] | np.ndarray | None = None) -> list[StackedGroup]:
        """The samples (all, or ``index``) in NFN layout, one :class:`StackedGroup` per architecture shape.

        ``group_by="shape"``: samples whose tensors have equal shapes are stacked together
        (groups in order of first appearance, samples in dataset order); ``None``: one
        group, which needs every sample to have one shape (else a one-line error). Only
        plain ``mlp``/``cnn`` layouts (``layers.*`` / ``convs.*`` + ``head``) have this form.
        """
        if group_by not in ("shape", None):
            raise SpecError(f"to_stacked: group_by={group_by!r}; use 'shape' or None")
        rows = np.arange(len(self)) if index is None else np.asarray(index, dtype=np.int64)
        groups: dict[Any, list[int]] = {}
        for i in rows:
            groups.setdefault(shape_key(self.params[i]), []).append(int(i))
        if group_by is None and len(groups) > 1:
            raise DataError(f"to_stacked(group_by=None): the samples have {len(groups)} different shapes; "
                            "use group_by='shape'")
        return [StackedGroup.of([self.params[i] for i in idx], np.asarray(idx, dtype=np.int64))
                for idx in groups.values()]

    # -- loaders ---------------------------------------------------------------------------
    @classmethod
    def from_tables(cls, weights: Sequence[Any], models: Sequence[Any], metrics: Sequence[Any],
                    phases: Any | None = None, epochs: Epochs = None) -> WeightDataset:
        """From pyarrow tables (one per population); ``epochs`` keeps only those checkpoints (or ``"final"``)."""
        import pandas as pd
        import pyarrow.compute as pc

        if isinstance(epochs, str) and epochs != "final":
            raise SpecError(f"epochs={epochs!r}: give a list of checkpoint epochs, 'final' or None")
        wanted = None if epochs is None or epochs == "final" else {int(e) for e in epochs}
        keys: list[tuple[str, int]] = []
        params: dict[tuple[str, int], dict[str, Tensor]] = {}
        for table in weights:
            last: dict[str, int] = {}
            if epochs == "final":
                grouped = table.group_by("model_id").aggregate([("epoch", "max")])
                last = dict(zip(grouped["model_id"].to_pylist(), grouped["epoch_max"].to_pylist()))
                keep = pc.equal(table["epoch"], pa_take(last, table["model_id"]))
                table = table.filter(keep)
            vals = table["values"].combine_chunks()
            flat = np.asarray(vals.values.to_numpy(zero_copy_only=False), dtype=np.float32)
            offsets = vals.offsets.to_numpy()
            for i, (mid, ep, name, shape) in enumerate(zip(table["model_id"].to_pylist(), table["epoch"].to_pylist(),
                                                           table["tensor"].to_pylist(), table["shape"].to_pylist())):
                if wanted is not None and ep not in wanted:
                    continue
                key = (mid, int(ep))
                if key not in params:
                    params[key] = {}
                    keys.append(key)
                params[key][name] = torch.from_numpy(flat[offsets[i]: offsets[i + 1]].reshape(shape).copy())
        ordered = [{n: p[n] for n in sorted(p, key=tensor_sort_key)} for p in (params[k] for k in keys)]
        frame = pd.DataFrame(keys, columns=["model_id", "epoch"])
        mod = pd.concat([t.to_pandas() for t in models], ignore_index=True)
        met = pd.concat([t.to_pandas() for t in metrics], ignore_index=True)
        met = met.drop(columns=[c for c in ("zoo", "population") if c in met.columns])
        frame = frame.merge(mod, on="model_id", how="left").merge(met, on=["model_id", "epoch"], how="left")
        if phases is not None:
            ph = phases.to_pandas()
            frame = frame.merge(ph[["model_id", "phase"]].drop_duplicates("model_id"), on="model_id", how="left")
        specs = {r.model_id: json.loads(r.spec_json) for r in mod.itertuples()}
        return cls(ordered, frame, specs)

    @classmethod
    def from_files(cls, weights: Sequence[str | Path], models: Sequence[str | Path], metrics: Sequence[str | Path],
                   phases: str | Path | None = None, epochs: Epochs = None) -> WeightDataset:
        """The given population files (``weights``, ``models``, ``metrics`` in one population order; ``phases``)."""
        if not weights:
            raise DataError("no weights tables given; run the workflow (snakemake) to extract them")
        if not (len(weights) == len(models) == len(metrics)):
            raise DataError(f"give one models and one metrics file per weights file (got {len(weights)} weights, "
                            f"{len(models)} models, {len(metrics)} metrics)")
        return cls.from_tables([read_table(f, "weights") for f in weights], [read_table(f, "models") for f in models],
                               [read_table(f, "metrics") for f in metrics],
                               read_table(phases, "phases") if phases else None, epochs)

    @classmethod
    def from_zoo(cls, zoo_dir: str | Path, epochs: Epochs = None) -> WeightDataset:
        """Every population of the current spec of ``data/zoos/<zoo>`` (``phases`` if present)."""
        from zoo.layout import current_table_files, zoo_dir_layout

        zoo_dir = Path(zoo_dir)
        weights = current_table_files(zoo_dir, "weights")
        if not weights:
            raise DataError(f"{zoo_dir}/weights: no weights tables; run the workflow (snakemake) to extract them")
        pops = [f.stem for f in weights]
        lay = zoo_dir_layout(zoo_dir)
        phases = Path(lay.phases)
        return cls.from_files(weights, [lay.table("models", p) for p in pops], [lay.table("metrics", p) for p in pops],
                              phases if phases.is_file() else None, epochs)


def pa_take(mapping: Mapping[str, int], ids: Any) -> Any:
    """``[mapping[id] for id in ids]`` as an Arrow array (ids: an Arrow string column)."""
    import pyarrow as pa

    return pa.array([mapping[m] for m in ids.to_pylist()], type=pa.int64())


class TaskDataset(torch.utils.data.Dataset):
    """``(tensors, target)`` pairs of a :class:`WeightDataset` for one task (see :meth:`WeightDataset.with_task`)."""

    def __init__(self, data: WeightDataset, targets: np.ndarray):
        self.data, self.y = data, targets

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> tuple[dict[str, Tensor], Any]:
        return self.data.params[i], self.y[i]


def collate(batch: Sequence[Any]) -> dict[str, Any]:
    """A batch of networks of possibly mixed widths (a ``DataLoader``'s ``collate_fn``).

    ``batch``: tensor dicts, or ``(tensor dict, target)`` pairs (:meth:`WeightDataset.with_task`).
    Returns ``{"params": {name: [B, *max shape]}, "mask": [mask_0, …], "target": [B]}``:
    each tensor zero-padded to the batch's largest shape, and ``mask[h]`` ``[B, n_h]`` = 1
    for the real units of hidden layer ``h`` (0 for padding). A zero-padded unit has zero
    in- and out-weights and bias, so every network computes the same logits as unpadded.
    ``target`` is present for pairs (float tensor for numeric targets, else a list).
    """
    pairs = bool(batch) and isinstance(batch[0], tuple)
    nets = [b[0] for b in batch] if pairs else list(batch)
    names = list(nets[0])
    for n in nets[1:]:
        if list(n) != names:
            raise DataError(f"collate: networks with different tensors ({list(n)} vs {names}); "
                            "batch one depth / architecture at a time")
    out: dict[str, Any] = {"params": {}}
    for name in names:
        shape = [max(n[name].shape[d] for n in nets) for d in range(nets[0][name].dim())]
        stacked = torch.zeros((len(nets), *shape), dtype=nets[0][name].dtype)
        for b, n in enumerate(nets):
            t = n[name]
            stacked[(b, *[slice(0, s) for s in t.shape])] = t
        out["params"][name] = stacked
    masks = []
    for w, _ in layer_pairs(names)[:-1]:
        n_max = out["params"][w].shape[1]
        m = torch.zeros(len(nets), n_max)
        for b, n in enumerate(nets):
            m[b, : n[w].shape[0]] = 1.0
        masks.append(m)
    out["mask"] = masks
    if pairs:
        ys = [b[1] for b in batch]
        try:
            out["target"] = torch.as_tensor(np.asarray(ys, dtype=np.float64))
        except (TypeError, ValueError):
            out["target"] = ys
    return out


@dataclass
class StackedGroup:
    """Networks of one shape in the NFN layout (:meth:`WeightDataset.to_stacked`).

    ``weights[l]``: ``[B, 1, n_out, n_in]`` (linear) or ``[B, 1, n_out, n_in, kh, kw]``
    (convolution); ``biases[l]``: ``[B, 1, n_out]``; ``l`` in layer order (input → head).
    ``index``: the dataset rows of the ``B`` networks; ``layers``: the zoo tensor names
    ``(weight, bias)`` of each layer, so :meth:`state_dict` maps back exactly.
    """

    index: np.ndarray
    layers: list[tuple[str, str]]
    weights: list[Tensor]
    biases: list[Tensor]

    @classmethod
    def of(cls, nets: Sequence[Mapping[str, Tensor]], index: np.ndarray) -> StackedGroup:
        pairs = layer_pairs(nets[0])
        weights = [torch.stack([n[w] for n in nets]).unsqueeze(1) for w, _ in pairs]
        biases = [torch.stack([n[b] for n in nets]).unsqueeze(1) for _, b in pairs]
        return cls(index, pairs, weights, biases)

    def __len__(self) -> int:
        return len(self.index)

    def state_dict(self, b: int) -> dict[str, Tensor]:
        """Network ``b`` of the group back as the zoo's ordered ``{tensor name: Tensor}``."""
        out: dict[str, Tensor] = {}
        for (w, bias), tw, tb in zip(self.layers, self.weights, self.biases):
            out[w], out[bias] = tw[b, 0], tb[b, 0]
        return out

    def wsfeat(self) -> Any:
        """The group as ``nfn.common.WeightSpaceFeatures`` (needs the ``nfn`` package)."""
        from nfn.common import WeightSpaceFeatures

        return WeightSpaceFeatures(tuple(self.weights), tuple(self.biases))

    def network_spec(self) -> Any:
        """``nfn.common.NetworkSpec`` of the group (hidden dimensions symmetric, input/output fixed)."""
        from nfn.common import network_spec_from_wsfeat

        return network_spec_from_wsfeat(self.wsfeat())


def shape_key(params: Mapping[str, Tensor]) -> tuple[tuple[int, ...], ...]:
    """The architecture shape of one sample (samples with equal keys can be mixed)."""
    return tuple(tuple(t.shape) for t in params.values())
