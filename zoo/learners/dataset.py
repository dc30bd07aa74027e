"""``WeightDataset``: a zoo's ``weights`` Parquet read straight into per-layer torch tensors.

One sample = one model at one checkpoint epoch: an ordered ``{tensor name: Tensor}``
(names as in :func:`zoo.models.param_shapes`). ``meta`` is a pandas frame with one row
per sample: the ``models`` columns (every hyperparameter), the ``metrics`` of that epoch,
and ``phase`` when ``phases.parquet`` exists. No pickles: only Arrow buffers → NumPy → torch.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

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


class WeightDataset(torch.utils.data.Dataset):
    """Samples ``(model_id, epoch)`` → ``{tensor: Tensor}``, with a ``meta`` frame of targets.

    Build it with :meth:`from_zoo` (a ``data/zoos/<zoo>`` folder) or :meth:`from_tables`.
    ``dataset[i]`` is the ordered tensor dict of sample ``i``; ``spec(i)`` its model spec.
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

    @classmethod
    def from_tables(cls, weights: Sequence[Any], models: Sequence[Any], metrics: Sequence[Any],
                    phases: Any | None = None, epochs: Sequence[int] | None = None) -> WeightDataset:
        """From pyarrow tables (one per population); ``epochs`` keeps only those checkpoints."""
        import pandas as pd

        wanted = None if epochs is None else {int(e) for e in epochs}
        keys: list[tuple[str, int]] = []
        params: dict[tuple[str, int], dict[str, Tensor]] = {}
        for table in weights:
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
    def from_zoo(cls, zoo_dir: str | Path, epochs: Sequence[int] | None = None) -> WeightDataset:
        """Every population of ``data/zoos/<zoo>`` (``weights``, ``models``, ``metrics``; ``phases`` if present)."""
        zoo_dir = Path(zoo_dir)
        files = sorted((zoo_dir / "weights").glob("*.parquet"))
        if not files:
            raise DataError(f"{zoo_dir}/weights: no weights tables; run the workflow (snakemake) to extract them")
        pops = [f.stem for f in files]
        weights = [read_table(f, "weights") for f in files]
        models = [read_table(zoo_dir / "models" / f"{p}.parquet", "models") for p in pops]
        metrics = [read_table(zoo_dir / "metrics" / f"{p}.parquet", "metrics") for p in pops]
        phase_file = zoo_dir / "phases.parquet"
        phases = read_table(phase_file) if phase_file.is_file() else None
        return cls.from_tables(weights, models, metrics, phases, epochs)


def shape_key(params: Mapping[str, Tensor]) -> tuple[tuple[int, ...], ...]:
    """The architecture shape of one sample (samples with equal keys can be mixed)."""
    return tuple(tuple(t.shape) for t in params.values())
