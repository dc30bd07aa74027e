"""Where everything lives under the data folder: the one owner of every path under ``data/``.

The Snakemake rules build their inputs and outputs from these functions (with wildcard
patterns such as ``"{zoo}"`` and ``"{population}"`` as arguments) and pass every path to
the job explicitly; jobs never rebuild a path a rule declared. Readers that are handed a
zoo folder instead of files (``zoo plot``, ``WeightDataset.from_zoo``, ``zoo catalog DATA``)
list the files of the zoo's *current* populations from its ``spec.json`` — never a glob,
which would also see the files an older spec left behind.

::

    data/
      zoo.duckdb                                     catalog (tables loaded from the files below)
      zoos/<zoo>/spec.json                           the resolved zoo spec (written when it changes)
      zoos/<zoo>/populations/<pop>.json              what a population's trained bits depend on
      zoos/<zoo>/checkpoints/<pop>.safetensors       every checkpoint of every model, stacked
      zoos/<zoo>/{models,metrics,weights,spectral,landscape,lmc,merging}/<pop>.parquet
      zoos/<zoo>/phases.parquet, figures/*.png|html, manifest.json
      zoos/<zoo>/resume/<pop>.pt                     training state while a population trains
      zoos/<zoo>/logs/, benchmarks/                  job logs and Snakemake benchmark TSVs
      learners/<zoo>/<task>/<learner>/<augment>/{results,predictions}.parquet
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Tables written once per population, each as ``<zoo>/<table>/<population>.parquet``.
POPULATION_TABLES = ("models", "metrics", "weights", "spectral", "landscape", "lmc", "merging")
#: Folders of a zoo that hold only files derived from the current spec (pruned to it).
DERIVED_FOLDERS = ("populations", "checkpoints", *POPULATION_TABLES, "resume", "figures")
#: Folders that are bookkeeping, not data (never listed in a manifest).
BOOKKEEPING_FOLDERS = ("logs", "benchmarks")
LEARNER_OUTPUTS = ("results", "predictions")
CATALOG_NAME = "zoo.duckdb"


@dataclass(frozen=True)
class ZooLayout:
    """Paths of one zoo under ``data`` (strings, so wildcard patterns pass through unchanged)."""

    data: str
    zoo: str

    @property
    def dir(self) -> str:
        return f"{self.data}/zoos/{self.zoo}"

    @property
    def spec(self) -> str:
        return f"{self.dir}/spec.json"

    @property
    def phases(self) -> str:
        return f"{self.dir}/phases.parquet"

    @property
    def manifest(self) -> str:
        return f"{self.dir}/manifest.json"

    @property
    def skipped(self) -> str:
        """Stages that do not apply to this zoo, with reasons (INR zoos only; :mod:`zoo.stages`)."""
        return f"{self.dir}/skipped.json"

    @property
    def learners_dir(self) -> str:
        return f"{self.data}/learners/{self.zoo}"

    def population_doc(self, population: str) -> str:
        return f"{self.dir}/populations/{population}.json"

    def checkpoint(self, population: str) -> str:
        return f"{self.dir}/checkpoints/{population}.safetensors"

    def table(self, table: str, population: str) -> str:
        if table not in POPULATION_TABLES:
            raise ValueError(f"{table!r} is not a per-population table; one of {', '.join(POPULATION_TABLES)}")
        return f"{self.dir}/{table}/{population}.parquet"

    def resume_state(self, population: str) -> str:
        return f"{self.dir}/resume/{population}.pt"

    def figure(self, name: str) -> str:
        return f"{self.dir}/figures/{name}"

    def log(self, name: str) -> str:
        return f"{self.dir}/logs/{name}.log"

    def benchmark(self, name: str) -> str:
        return f"{self.dir}/benchmarks/{name}.tsv"

    def learner_output(self, task: str, learner: str, augment: str, kind: str) -> str:
        return f"{self.learners_dir}/{task}/{learner}/{augment}/{kind}.parquet"

    def learner_log(self, task: str, learner: str, augment: str) -> str:
        return f"{self.learners_dir}/logs/{task}-{learner}-{augment}.log"

    def learner_benchmark(self, task: str, learner: str, augment: str) -> str:
        return f"{self.learners_dir}/benchmarks/{task}-{learner}-{augment}.tsv"

    def population_tables(self, populations: Iterable[str], tables: Iterable[str] = POPULATION_TABLES) -> list[str]:
        """``<table>/<population>.parquet`` for every table × population (table-major order)."""
        pops = list(populations)
        return [self.table(t, p) for t in tables for p in pops]


def catalog_path(data: str | Path) -> Path:
    """The catalog database of a data folder."""
    return Path(data) / CATALOG_NAME


def zoo_dir_layout(zoo_dir: str | Path) -> ZooLayout:
    """The layout of the zoo whose folder is ``zoo_dir`` (``<data>/zoos/<zoo>``)."""
    zoo_dir = Path(zoo_dir)
    return ZooLayout(str(zoo_dir.parent.parent), zoo_dir.name)


def read_spec_document(spec_path: str | Path) -> dict[str, Any]:
    """The JSON document of a ``spec.json`` (one-line error when missing or corrupt)."""
    from zoo.errors import DataError

    path = Path(spec_path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(f"{path}: missing zoo spec; run the workflow (snakemake) first") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: corrupt spec JSON ({exc}); delete it and re-run the workflow") from None


def current_populations(zoo_dir: str | Path) -> list[str]:
    """The population ids of the zoo's current spec (``spec.json``), in their stable order."""
    from zoo.jobs import read_spec

    return list(read_spec(Path(zoo_dir) / "spec.json").populations)


def current_table_files(zoo_dir: str | Path, table: str, existing_only: bool = True) -> list[Path]:
    """The files of one per-population table of the zoo's current spec (not a glob)."""
    layout = zoo_dir_layout(zoo_dir)
    files = [Path(layout.table(table, p)) for p in current_populations(zoo_dir)]
    return [f for f in files if f.is_file()] if existing_only else files


def catalog_files(data_dir: str | Path) -> list[Path]:
    """Every existing Parquet file of every zoo's current spec under ``data_dir`` (for ``zoo catalog DATA``).

    Learner outputs are those under ``learners/<zoo>/`` of a zoo that has a spec; the
    workflow itself passes its exact file list instead.
    """
    data_dir = Path(data_dir)
    files: list[Path] = []
    for spec in sorted(data_dir.glob("zoos/*/spec.json")):
        zoo_dir = spec.parent
        for table in POPULATION_TABLES:
            files += current_table_files(zoo_dir, table)
        layout = zoo_dir_layout(zoo_dir)
        if Path(layout.phases).is_file():
            files.append(Path(layout.phases))
        for kind in LEARNER_OUTPUTS:
            files += sorted(Path(layout.learners_dir).glob(f"*/*/*/{kind}.parquet"))
    return files


def population_document(zoo: Any, population: str) -> dict[str, Any]:
    """Everything a population's trained bits depend on (its file changes exactly when they do).

    ``zoo`` is a :class:`zoo.config.ZooSpec`. Each member's spec carries ``max_loss``.
    """
    from zoo.config import ZOO_DEFAULTS

    max_loss = zoo.raw.get("max_loss", ZOO_DEFAULTS["max_loss"])
    members = zoo.populations[population]
    return {
        "zoo": zoo.name,
        "population": population,
        "checkpoints": list(zoo.checkpoints),
        "models": [{"model_id": m.model_id, "spec": {**m.spec, "max_loss": max_loss}} for m in members],
    }


def write_if_changed(path: str | Path, text: str) -> bool:
    """Write ``text`` atomically unless the file already holds exactly it; return whether it wrote.

    The workflow writes ``spec.json`` and the population documents this way when it reads
    the config, so a file's modification time moves exactly when its content changes and
    Snakemake re-runs precisely the jobs that depend on what changed.
    """
    from zoo.store import write_text

    path = Path(path)
    try:
        if path.read_text() == text:
            return False
    except (FileNotFoundError, UnicodeDecodeError):
        pass
    write_text(path, text)
    return True


def document_text(doc: Mapping[str, Any]) -> str:
    """The canonical text of a JSON document written by the workflow."""
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"


def stale_files(layout: ZooLayout, keep: Iterable[str | Path]) -> list[Path]:
    """Files in the zoo's derived folders and its learner folder that ``keep`` does not list.

    Those are what an older spec left behind (a dropped seed's population, the populations
    of an old ``population_size``, a learner no longer configured); a clean run of the
    current spec would not have them.
    """
    from zoo.atomic import is_temporary

    kept = {Path(p).resolve() for p in keep}
    found: list[Path] = []
    roots = [Path(layout.dir) / f for f in DERIVED_FOLDERS]
    learners = Path(layout.learners_dir)
    if learners.is_dir():
        roots += [p for p in learners.iterdir() if p.is_dir() and p.name not in BOOKKEEPING_FOLDERS]
    for root in roots:
        if not root.is_dir():
            continue
        for f in sorted(root.rglob("*")):
            if f.is_file() and not any(is_temporary(p) for p in (f, *f.parents)) and f.resolve() not in kept:
                found.append(f)
    return found
