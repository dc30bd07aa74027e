"""The spectral condition for feature learning (Yang, Simon & Bernstein 2023), per layer × checkpoint.

Feature learning with every layer's updates of the right size needs ‖W‖₂ = Θ(√(fan_out/fan_in))
and ‖ΔW‖₂ = Θ(√(fan_out/fan_in)). The columns this module adds to the ``spectral`` table:

- ``fan_in``, ``fan_out``: the column and row counts of the matrix the layer applies. Dense
  ``[out, in]``: ``fan_out = out``, ``fan_in = in``. **Conv kernels** ``[out, in, kh, kw]``
  are taken as the matrix they apply to each input patch (``out × in·kh·kw``, the im2col
  form :func:`zoo.models.batched_conv2d` computes): ``fan_out = out``,
  ``fan_in = in·kh·kw`` (torch.nn.init's fan_in), and ‖W‖₂ is that matrix's largest
  singular value — not the ``spectral_norm`` column, which for conv layers is the largest
  singular value over the kh·kw kernel slices (WeightWatcher's slicing).
- ``spectral_norm_scaled`` = ‖W‖₂ / √(fan_out / fan_in).
- ``delta_spectral_norm`` = ‖W_t − W_s‖₂ with ``s`` the previous checkpoint *in the file*
  (not necessarily epoch t − 1); NaN at the first checkpoint. ``delta_spectral_norm_scaled``
  = that / √(fan_out / fan_in).

Norms are computed in float64 as the largest singular value (LAPACK, via NumPy), all models and
checkpoints of one tensor in one batched call.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

#: Columns added to the ``spectral`` table, with their Arrow type names.
CONDITION_COLUMNS: dict[str, str] = {
    "fan_in": "int64", "fan_out": "int64", "spectral_norm_scaled": "float64",
    "delta_spectral_norm": "float64", "delta_spectral_norm_scaled": "float64",
}


def fans(shape: Sequence[int]) -> tuple[int, int]:
    """``(fan_in, fan_out)`` of one weight tensor ``[out, in]`` or ``[out, in, kh, kw]``."""
    return math.prod(shape[1:]), int(shape[0])


def condition_metrics(stacked: Any) -> dict[str, np.ndarray]:
    """Columns for a tensor's checkpoints ``[E, P, out, in(, kh, kw)]`` (epochs in file order) → ``{column: [E, P]}``."""
    from zoo.spectral import _to_numpy

    W = _to_numpy(stacked).astype(np.float64, copy=False)
    E, P = W.shape[:2]
    fan_in, fan_out = fans(W.shape[2:])
    mats = W.reshape(E, P, fan_out, fan_in)
    finite = np.isfinite(mats).reshape(E, P, -1).all(-1)
    safe = np.where(np.isfinite(mats), mats, 0.0)
    norm = np.where(finite, _spectral_norm(safe), np.nan)
    delta = np.full((E, P), np.nan)
    if E > 1:
        delta[1:] = np.where(finite[1:] & finite[:-1], _spectral_norm(safe[1:] - safe[:-1]), np.nan)
    scale = math.sqrt(fan_out / fan_in)
    return {"fan_in": np.full((E, P), fan_in, np.int64), "fan_out": np.full((E, P), fan_out, np.int64),
            "spectral_norm_scaled": norm / scale, "delta_spectral_norm": delta,
            "delta_spectral_norm_scaled": delta / scale}


def _spectral_norm(mats: np.ndarray) -> np.ndarray:
    """‖W‖₂ (largest singular value) of every matrix of a stack ``[…, r, c]``."""
    from zoo.spectral import singular_values

    return singular_values(mats)[..., 0]


def add_condition_columns(table: Any, checkpoints: Mapping[int, Mapping[str, Any]], model_ids: Sequence[str]) -> Any:
    """``table`` (a ``spectral`` table: model_id, epoch, tensor …) with :data:`CONDITION_COLUMNS` appended."""
    import pyarrow as pa

    epochs = sorted(checkpoints)
    index = {m: i for i, m in enumerate(model_ids)}
    ep_index = {e: i for i, e in enumerate(epochs)}
    per_tensor = {}
    for name in dict.fromkeys(table.column("tensor").to_pylist()):
        per_tensor[name] = condition_metrics(np.stack([np.asarray(checkpoints[e][name]) for e in epochs]))
    rows_t = table.column("tensor").to_pylist()
    rows_e = [ep_index[e] for e in table.column("epoch").to_pylist()]
    rows_m = [index[m] for m in table.column("model_id").to_pylist()]
    for col, typ in CONDITION_COLUMNS.items():
        values = [per_tensor[t][col][e, m] for t, e, m in zip(rows_t, rows_e, rows_m)]
        table = table.append_column(pa.field(col, getattr(pa, typ)()), pa.array(values, getattr(pa, typ)()))
    return table
