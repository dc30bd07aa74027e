"""What a population job needs, estimated from the spec alone (no dataset loaded, no torch imported).

:func:`population_memory_bytes` is the peak resident memory of ``zoo train`` for one
population, the number the workflow's ``mem_mb`` and the spec validator use. It adds up
(float32 = 4 bytes; ``P`` models, ``N`` parameters each, ``C`` checkpoint epochs, batch ``B``):

- parameters: ``P · N · 4 · (2C + 3 + 2s)`` — every checkpoint kept in memory and once
  more while it is serialised, live weights, gradients and proposed weights, and ``s``
  optimizer slots (SGD momentum 1, Adam 2) held twice (current and proposed);
- training: ``P · B · 4 · (inputs + Σ kept + 2 · max kept)``, with ``kept`` the floats
  each layer keeps per example for the backward pass (outputs, pre-activations, im2col
  columns, attention scores) plus the largest layer's gradients in flight;
- evaluation: ``P · min(1024, n) · 4 · (inputs + max peak)``, with ``peak`` the floats
  alive while one layer runs without autograd (evaluation goes in chunks of 1,024);
- data: both splits as float32 twice (loader temporaries), per-model masks and labels
  ``P · n_train · 9``;
- :data:`PROCESS_BYTES` for the interpreter, torch, pyarrow and the dataset loader.

It is meant to lie safely above the measured peak: on 2026-12 measurements (MLP, CNN,
ResNet, transformer populations of 32–256 models) it was 1.2–1.6× the peak RSS of
``train_population``, so a spec refused on it could not have run.
Parameter counts follow :func:`zoo.models.param_shapes` exactly (tested); dataset shapes
come from :func:`dataset_shape`, a static table of the registry's datasets and options.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.errors import SpecError

if TYPE_CHECKING:
    from zoo.config import ZooSpec

FLOAT_BYTES = 4
#: Resident memory of a ``zoo train`` process before any model exists (Python, torch, NumPy).
PROCESS_BYTES = 700 * 2**20
#: Examples per evaluation chunk (``zoo.train.EVAL_CHUNK``).
EVAL_CHUNK = 1024
OPTIMIZER_SLOTS = {"sgd": 1, "adam": 2}


@dataclass(frozen=True)
class DataShape:
    """What a model sees of a dataset: input shape (no batch axis), outputs, split sizes."""

    input_shape: tuple[int, ...]
    n_outputs: int
    n_train: int
    n_test: int


def _split(total: int, test_fraction: float) -> tuple[int, int]:
    n_test = int(round(total * test_fraction))
    return total - n_test, n_test


def _image(channels: int, size: int, n_train: int, n_test: int, options: Mapping[str, Any]) -> DataShape:
    s = int(options.get("image_size") or size)
    c = 1 if options.get("grayscale") else channels
    shape = (c * s * s,) if options.get("flatten") else (c, s, s)
    n_train = n_train if options.get("n_train") is None else min(n_train, int(options["n_train"]))
    n_test = n_test if options.get("n_test") is None else min(n_test, int(options["n_test"]))
    return DataShape(shape, 10, n_train, n_test)


def dataset_shape(name: str, options: Mapping[str, Any] | None = None) -> DataShape:
    """Static shape of a registered dataset under ``options`` (mirrors the loaders in ``zoo.datasets``).

    An unknown name gets a CIFAR-sized guess (3×32×32 inputs, 10 classes, 60,000 examples).
    """
    o = dict(options or {})
    if name == "digits":
        tr, te = _split(1797, float(o.get("test_fraction", 0.2)))
        return DataShape((64,) if o.get("flatten") else (1, 8, 8), 10, tr, te)
    if name in ("mnist", "fashion-mnist", "kmnist"):
        return _image(1, 28, 60_000, 10_000, o)
    if name == "cifar10":
        return _image(3, 32, 50_000, 10_000, o)
    if name == "svhn":
        return _image(3, 32, 73_257, 26_032, o)
    if name == "mnist1d":
        n = int(o.get("num_samples", 5000))
        return DataShape((40,), 10, int(n * 0.8), n - int(n * 0.8))
    if name == "teacher-student":
        return DataShape((int(o.get("dim", 8)),), 1, int(o.get("n_train", 1000)), int(o.get("n_test", 1000)))
    if name in ("wine", "breast_cancer"):
        total, features, classes = (178, 13, 3) if name == "wine" else (569, 30, 2)
        tr, te = _split(total, float(o.get("test_fraction", 0.2)))
        return DataShape((features,), classes, tr, te)
    return DataShape((3, 32, 32), 10, 50_000, 10_000)


# ---------------------------------------------------------------------------- per-model sizes
def _conv_out(size: int, k: int, stride: int, padding: int) -> int:
    return max(1, (size + 2 * padding - k) // stride + 1)


def _image_hw(spec: Mapping[str, Any], input_shape: tuple[int, ...]) -> tuple[int, int, int]:
    if len(input_shape) != 3:
        raise SpecError(f"arch {spec['arch']!r} needs image inputs [channels, height, width], but dataset "
                        f"{spec.get('dataset')!r} gives {list(input_shape)}; use arch mlp for this dataset")
    return input_shape[0], input_shape[1], input_shape[2]


@dataclass(frozen=True)
class Footprint:
    """Sizes of one model: parameters, and per example the floats of each layer.

    ``kept[i]``: floats layer ``i`` keeps for the backward pass (outputs, pre-activations,
    im2col columns, attention scores); ``peak[i]``: floats alive at once while layer ``i``
    runs without autograd (evaluation).
    """

    params: int
    kept: tuple[int, ...]
    peak: tuple[int, ...]


def model_footprint(spec: Mapping[str, Any], shape: DataShape) -> Footprint:
    """Parameter count (equal to :func:`zoo.models.n_params`) and per-layer activation sizes of ``spec``."""
    arch, x, n_out = spec["arch"], shape.input_shape, shape.n_outputs
    kept: list[int] = []
    peak: list[int] = []
    if arch == "mlp":
        fan_in, params = math.prod(x), 0
        for out in [spec["width"]] * spec["depth"] + [n_out]:
            params += out * fan_in + out
            kept.append(2 * out)
            peak.append(fan_in + 2 * out)
            fan_in = out
        return Footprint(params, tuple(kept), tuple(peak))
    if arch == "cnn":
        cin, h, w = _image_hw(spec, x)
        k, s, ch, params = spec["kernel"], spec["stride"], spec["channels"], 0
        for _ in range(spec["depth"]):
            h, w = _conv_out(h, k, s, k // 2), _conv_out(w, k, s, k // 2)
            params += ch * cin * k * k + ch
            cols, out = cin * k * k * h * w, ch * h * w  # im2col columns are copied once when transposed
            kept.append(2 * cols + 3 * out)
            peak.append(2 * cols + 3 * out)
            cin = ch
        return Footprint(params + n_out * cin + n_out, tuple(kept), tuple(peak))
    if arch == "resnet":
        cin, h, w = _image_hw(spec, x)
        k = spec["width"]
        params = k * cin * 9 + k
        kept.append(2 * cin * 9 * h * w + 3 * k * h * w)
        peak.append(kept[-1])
        c = k
        for i in range(spec["depth"]):
            cout, stride = k * 2**i, 1 if i == 0 else 2
            h, w = _conv_out(h, 3, stride, 1), _conv_out(w, 3, stride, 1)
            params += cout * c * 9 + cout + cout * cout * 9 + cout
            block = 2 * c * 9 * h * w + 2 * cout * 9 * h * w + 6 * cout * h * w
            if c != cout or stride != 1:
                params += cout * c + cout
                block += 2 * c * h * w + 2 * cout * h * w
            kept.append(block)
            peak.append(2 * max(c, cout) * 9 * h * w + 4 * cout * h * w)
            c = cout
        return Footprint(params + n_out * c + n_out, tuple(kept), tuple(peak))
    if arch == "siren":  # per coordinate: each hidden layer keeps its input, sin and cos (zoo.siren)
        d, c = (1, 1) if len(x) == 1 else (len(x) - 1, x[0])
        w, depth = spec["width"], spec["depth"]
        params = w * d + w + (depth - 1) * (w * w + w) + c * w + c
        return Footprint(params, tuple([3 * w] * depth + [2 * c]), tuple([3 * w] * depth + [2 * c]))
    if arch == "transformer":
        d, heads = spec["width"], spec["heads"]
        if d % heads:
            raise SpecError(f"arch transformer: width {d} is not divisible by heads {heads}; "
                            "pick width = heads × head size")
        seq, f = (x[0], 1) if len(x) == 1 else (x[-2], math.prod(x[:-2]) * x[-1])
        params = d * f + d + seq * d
        kept.append(2 * seq * d)
        peak.append(seq * f + 2 * seq * d)
        block = 2 * d + (3 * d * d + 3 * d) + (d * d + d) + 2 * d + (2 * d * d + 2 * d) + (2 * d * d + d)
        params += spec["depth"] * block
        # scores, scaled scores and their softmax (heads · L² each) dominate long sequences
        kept += [16 * seq * d + 3 * heads * seq * seq] * spec["depth"]
        peak += [6 * seq * d + 3 * heads * seq * seq] * spec["depth"]
        return Footprint(params + 2 * d + n_out * d + n_out, tuple(kept), tuple(peak))
    raise SpecError(f"unknown arch {arch!r}")  # pragma: no cover - the schema rejects other archs


def memory_bytes(spec: Mapping[str, Any], n_models: int, n_checkpoints: int) -> int:
    """Estimated peak bytes of training ``n_models`` models of ``spec`` together (see module doc)."""
    shape = dataset_shape(spec["dataset"], spec.get("dataset_options"))
    fp = model_footprint(spec, shape)
    inputs = math.prod(shape.input_shape)
    slots = OPTIMIZER_SLOTS.get(spec.get("optimizer", "sgd"), 2)
    if spec["arch"] == "siren":  # full batch over the signal's coordinates; every signal of the dataset loaded
        coords = math.prod(shape.input_shape[1:] if len(shape.input_shape) > 1 else shape.input_shape)
        total = n_models * fp.params * FLOAT_BYTES * (2 * n_checkpoints + 3 + 2 * slots)
        total += n_models * (coords + 32) * (sum(fp.kept) + 4) * FLOAT_BYTES
        total += (shape.n_train + shape.n_test) * inputs * FLOAT_BYTES * 3
        return int(total + PROCESS_BYTES)
    batch = min(int(spec["batch_size"]), shape.n_train)
    chunk = min(EVAL_CHUNK, max(shape.n_train, shape.n_test))
    p = n_models
    total = p * fp.params * FLOAT_BYTES * (2 * n_checkpoints + 3 + 2 * slots)
    total += p * batch * (inputs + sum(fp.kept) + 2 * max(fp.kept)) * FLOAT_BYTES
    total += p * chunk * (inputs + max(fp.peak)) * FLOAT_BYTES
    total += (shape.n_train + shape.n_test) * (inputs + shape.n_outputs) * FLOAT_BYTES * 2
    total += p * shape.n_train * 9
    return int(total + PROCESS_BYTES)


def population_memory_bytes(zoo_spec: ZooSpec, population_id: str) -> int:
    """Estimated peak bytes of ``zoo train`` for one population of ``zoo_spec`` (for ``mem_mb``)."""
    try:
        members = zoo_spec.populations[population_id]
    except KeyError:
        known = ", ".join(list(zoo_spec.populations)[:5])
        raise SpecError(f"zoo '{zoo_spec.name}': no population {population_id!r}; known: {known}, …") from None
    return memory_bytes(members[0].spec, len(members), len(zoo_spec.checkpoints))


def machine_memory_bytes() -> int:
    """Physical memory of this machine, or the cgroup limit of this process if that is lower."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(path).read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            total = min(total, int(text))
    return total


def check_population_memory(zoo_spec: ZooSpec, settings: Mapping[str, Any] | None = None) -> None:
    """Refuse a zoo whose largest population cannot fit in memory (one line naming the fix).

    The limit is ``settings.max_memory_gb`` (GiB) if set, else this machine's memory.
    """
    settings = settings or {}
    limit_gb = settings.get("max_memory_gb")
    limit = int(limit_gb * 2**30) if limit_gb is not None else machine_memory_bytes()
    cache: dict[tuple[str, int], int] = {}
    worst, worst_id = 0, ""
    for pid, members in zoo_spec.populations.items():
        key = (pid.rsplit("-", 1)[0] if pid.count("-") > 1 else pid, len(members))
        if key not in cache:
            try:
                cache[key] = memory_bytes(members[0].spec, len(members), len(zoo_spec.checkpoints))
            except SpecError as exc:  # e.g. a CNN on tabular data, transformer heads not dividing width
                raise SpecError(f"zoo '{zoo_spec.name}': population {pid}: {exc}") from None
        if cache[key] > worst:
            worst, worst_id = cache[key], pid
    if worst <= limit:
        return
    members = zoo_spec.populations[worst_id]
    spec = members[0].spec
    n_params = model_footprint(spec, dataset_shape(spec["dataset"], spec.get("dataset_options"))).params
    shape = ", ".join(f"{k} {spec[k]}" for k in ("width", "channels", "depth", "heads") if k in spec)
    where = "settings.max_memory_gb" if limit_gb is not None else "this machine's memory"
    raise SpecError(
        f"zoo '{zoo_spec.name}': population {worst_id} ({len(members)} {spec['arch']} models of {n_params:,} "
        f"parameters; {shape}; batch_size {spec.get('batch_size', 'full')}) needs about {worst / 2**30:,.1f} GiB, more than "
        f"the {limit / 2**30:,.1f} GiB of {where}; use a smaller width/channels/depth/batch_size or "
        f"settings.population_size, or set settings.max_memory_gb for a larger machine"
    )


__all__ = [
    "DataShape",
    "Footprint",
    "check_population_memory",
    "dataset_shape",
    "machine_memory_bytes",
    "memory_bytes",
    "model_footprint",
    "population_memory_bytes",
]
