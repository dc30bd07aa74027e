"""Every fixed set of names the project accepts, in one place (DESIGN §9: one source for each enum).

The JSON schema (``zoo/schemas/config.schema.yaml``) repeats these lists because Snakemake
and editors read it without Python; ``tests/test_enums.py`` walks the schema and asserts
that every ``enum`` (and every pattern built from one) equals the tuple here, and that the
modules which act on a name (the dataset registry, ``zoo.models.ACTIVATIONS``, the batched
optimizer, the phase labeller) know exactly these names. Add a name here, in the schema
and in the module that implements it, together.

This module imports nothing, so anything (the schema checks, the CLI) may import it cheaply.
"""

from __future__ import annotations

#: ``model.arch``.
ARCHS: tuple[str, ...] = ("mlp", "cnn", "resnet", "transformer", "siren")

#: ``model.activation`` / grid axis ``activation`` (implemented in ``zoo.models.ACTIVATIONS``).
ACTIVATIONS: tuple[str, ...] = ("relu", "tanh", "gelu", "sigmoid", "identity")

#: ``optimizer.name`` / grid axis ``optimizer`` (implemented in ``zoo.optim.BatchedOptimizer``).
OPTIMIZERS: tuple[str, ...] = ("sgd", "adam")

#: ``init`` / grid axis ``init``: weight initialisation schemes (``zoo.models``).
INIT_SCHEMES: tuple[str, ...] = (
    "default", "kaiming_normal", "kaiming_uniform", "xavier_normal", "xavier_uniform", "normal", "uniform",
)
#: Schemes parameterised by ``init_std`` (standard deviation of the initial weights).
STD_INIT_SCHEMES: tuple[str, ...] = ("normal", "uniform")

#: ``dataset``: names registered by ``zoo.data`` and ``zoo.datasets.*`` (sorted, as ``known_datasets()``).
DATASETS: tuple[str, ...] = (
    "breast_cancer", "cifar10", "digits", "fashion-mnist", "kmnist", "mnist", "mnist1d", "svhn",
    "teacher-student", "wine",
)

#: ``dataset`` of an INR zoo (``arch: siren``): datasets whose samples are signals (``zoo.datasets.signals``).
SIGNAL_DATASETS: tuple[str, ...] = ("digits", "fashion-mnist", "mnist1d")
#: ``signals.split``: fit the signals of the dataset's train split, its test split, or both.
SIGNAL_SPLITS: tuple[str, ...] = ("train", "test", "both")
#: ``signals.init`` of an INR zoo: every INR its own initial draw, or one draw per seed shared by all signals.
SIGNAL_INITS: tuple[str, ...] = ("per_signal", "shared")

#: ``Dataset.task``: what the targets are (regression zoos hold R² in the ``*_acc`` columns).
TASK_KINDS: tuple[str, ...] = ("classification", "regression")

#: Keys a zoo's ``grid`` may vary (every one is also a ``models`` column).
GRID_AXES: tuple[str, ...] = (
    "width", "depth", "channels", "kernel", "stride", "activation", "lr", "batch_size",
    "momentum", "weight_decay", "optimizer", "train_fraction",
    "label_noise", "dropout", "init", "init_std", "heads",
)

#: Closed-form grid axes: ``{logspace: [a, b, n]}`` (10**a … 10**b) and ``{linspace: [a, b, n]}``.
SPACINGS: tuple[str, ...] = ("logspace", "linspace")

#: Sampled grid axes (need the zoo's ``sample``).
DISTRIBUTIONS: tuple[str, ...] = ("uniform", "loguniform", "randint", "choice")

#: ``learn.learners`` (implemented in ``zoo.learners.tabular`` / ``zoo.learners.neural`` /
#: ``zoo.learners.nfn_nets``; ``hparams-gbm`` is the control that sees no weights).
LEARNERS: tuple[str, ...] = (
    "hparams-gbm", "statnn-gbm", "statnn-ridge", "spectral-gbm", "spectral-ridge", "flat-mlp", "equivariant",
    "nfn-np", "nfn-hnp",
)

#: ``learn.protocol`` (``zoo.learners.splits.PROTOCOLS``): the NFN paper's, and every checkpoint pooled.
LEARN_PROTOCOLS: tuple[str, ...] = ("nfn", "pooled")

#: ``learn.augments``: single augmentations; chain several with ``+`` (e.g. ``permutation+noise``);
#: ``none`` = no augmentation. At most one ``mixup*`` per chain.
AUGMENTS: tuple[str, ...] = (
    "none", "permutation", "rescale", "signflip", "noise", "dropout", "sparsify", "mixup", "mixup-perm", "mixup-match",
)

#: ``learn.tasks`` with a fixed name; ``log_<axis>`` (log10 of a models column) is the open-ended one.
LEARN_TASKS: tuple[str, ...] = ("test_acc", "ggap", "epoch", "phase", "class")

#: ``learn.split`` kinds: ``model``, ``region:<axis>:<side>``, ``phase:<label>``.
SPLIT_KINDS: tuple[str, ...] = ("model", "region", "phase", "signal")
#: The ``<side>`` of a ``region:<axis>:<side>`` split.
REGION_SIDES: tuple[str, ...] = ("low", "high")

#: Phases of Yang et al. 2021 (``zoo.phases``).
PHASES: tuple[str, ...] = ("I", "II", "III", "IV-A", "IV-B")
#: Our further labels: one-class predictors, diverged models, models without a peer seed.
OTHER_PHASE_LABELS: tuple[str, ...] = ("collapsed", "diverged", "unlabelled")
#: Every value the ``phase`` column of ``phases`` may hold.
PHASE_LABELS: tuple[str, ...] = PHASES + OTHER_PHASE_LABELS

#: Dataset options that say where files are, not what they are: left out of ``model_id``,
#: and ignored by datasets that have no files (digits, tabular, generated data).
LOCATION_OPTIONS: tuple[str, ...] = ("data_root",)

#: ``weights.kind``.
TENSOR_KINDS: tuple[str, ...] = ("weight", "bias")


def alternation(names: tuple[str, ...]) -> str:
    """``"a|b|c"`` for a regular expression; names are plain words, hyphens and digits."""
    return "|".join(names)


def augments_pattern() -> str:
    """The JSON-schema pattern of one ``learn.augments`` entry (``none`` or a ``+`` chain)."""
    single = alternation(tuple(a for a in AUGMENTS if a != "none"))
    return f"^(none|({single})(\\+({single}))*)$"


def tasks_pattern() -> str:
    """The JSON-schema pattern of one ``learn.tasks`` entry."""
    return f"^({alternation(LEARN_TASKS)}|log_[a-z_]+)$"


def split_pattern() -> str:
    """The JSON-schema pattern of ``learn.split``."""
    return f"^(model|signal|region:[a-z_]+:({alternation(REGION_SIDES)})|phase:[A-Za-z0-9-]+)$"
