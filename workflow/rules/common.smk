# Expand the config once; every rule takes its paths from zoo.layout and its targets from
# the functions below. Reading the config also writes each zoo's spec.json and population
# documents — only where their content changed — so a file's time moves exactly when what
# depends on it must re-run (a dropped seed, a new max_loss, another population_size).
import os
import sys

from zoo.config import load_workflow_config
from zoo.errors import ZooError
from zoo.jobs import write_zoo_documents
from zoo.layout import ZooLayout
from zoo.resources import population_memory_bytes
from zoo.stages import applies, grid_metric, skipped_stages

try:
    # re-reads the config files with the strict loader (no aliases, no duplicate keys),
    # validates, counts models arithmetically, checks memory, then expands
    ZOOS = load_workflow_config(
        config, workflow.configfiles, workflow.config_settings.config
    )
except ZooError as exc:
    sys.exit(f"zoo: error: {exc}")

# environment.post-deploy.sh installs this checkout into a Snakemake-built conda env (--sdm conda)
os.environ.setdefault("ZOO_SOURCE", workflow.basedir)

SETTINGS = config.get("settings", {})
DATA = "data"
ENV = "../../environment.yml"
#: Paths with the {zoo} / {population} wildcards left in (rules fill them).
L = ZooLayout(DATA, "{zoo}")

for _zoo in ZOOS.values():
    write_zoo_documents(_zoo, SETTINGS, DATA)


wildcard_constraints:
    zoo="[a-z0-9][a-z0-9_-]*",
    population="[a-z]+-[0-9a-f]{10}(-[0-9]+)?",


def layout(zoo):
    return ZooLayout(DATA, zoo)


def populations(zoo):
    return list(ZOOS[zoo].populations)


def population_targets(pattern):
    """Every (zoo, population) filled into ``pattern``."""
    return [pattern.format(zoo=z, population=p) for z in ZOOS for p in populations(z)]


def zoo_tables(*tables):
    """Input function: the given per-population tables of every population of ``wildcards.zoo``."""

    def files(wildcards):
        return layout(wildcards.zoo).population_tables(
            populations(wildcards.zoo), tables
        )

    return files


def learn_input(table):
    """Input function for learn jobs — the zoo's ``table`` files if the learner reads that table."""
    from zoo.learners.workflow import learn_tables

    def files(w):
        if table not in learn_tables(w.task, w.learner, config.get("learn", {})):
            return []
        if table == "phases":
            return [layout(w.zoo).phases]
        return layout(w.zoo).population_tables(populations(w.zoo), (table,))

    return files


def population_mem_mb(wildcards):
    """Memory of a train job: parameters × models × (checkpoints kept + optimizer state) + data + torch."""
    return population_memory_bytes(ZOOS[wildcards.zoo], wildcards.population) // 2**20


# Each stage file appends the outputs of a zoo that the catalog and the manifest must
# list, as functions zoo -> [paths]; `rule all` also builds every FINAL_TARGETS path.
ZOO_OUTPUTS = []
FINAL_TARGETS = []


def stage_applies(zoo, stage):
    """Whether ``stage`` builds outputs for ``zoo`` (INR zoos skip the classifier-only stages, zoo.stages)."""
    return applies(ZOOS[zoo].raw, stage)


def zoo_outputs(zoo):
    """Every file the workflow makes for one zoo (spec, population documents, checkpoints, tables, figures, learners)."""
    lay = layout(zoo)
    files = [lay.spec] + [lay.population_doc(p) for p in populations(zoo)]
    if skipped_stages(ZOOS[zoo].raw):
        files.append(lay.skipped)
    for outputs in ZOO_OUTPUTS:
        files += outputs(zoo)
    return files


def parquet_outputs(zoo):
    return [f for f in zoo_outputs(zoo) if f.endswith(".parquet")]
