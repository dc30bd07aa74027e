# Expand the config once; every rule reads targets from these functions.
import json
import os
import sys

from zoo.config import load_zoos, validate, zoo_document
from zoo.errors import ZooError
from zoo.hashing import short_hash

try:
    validate(config, source="config")
    ZOOS = load_zoos(config)
except ZooError as exc:
    sys.exit(f"zoo: error: {exc}")

SETTINGS = config.get("settings", {})
DATA = "data"
ENV = "../../environment.yml"

# Stages append the Parquet files the catalog must wait for, and further final
# targets (figures, reports) that `rule all` must build.
CATALOG_INPUTS = []
FINAL_TARGETS = []


wildcard_constraints:
    zoo="[a-z0-9][a-z0-9_-]*",
    population="[a-z]+-[0-9a-f]{10}(-[0-9]+)?",


def zoo_dir(zoo):
    return f"{DATA}/zoos/{zoo}"


def population_targets(pattern):
    """Every (zoo, population) filled into ``pattern``."""
    return [pattern.format(zoo=z, population=p) for z, spec in ZOOS.items() for p in spec.populations]


def zoo_tables(wildcards, tables=("models", "metrics")):
    """Input function: the given Parquet tables of every population of ``wildcards.zoo``."""
    pops = ZOOS[wildcards.zoo].populations
    return [f"{DATA}/zoos/{wildcards.zoo}/{t}/{p}.parquet" for t in tables for p in pops]


def spec_document(wildcards):
    return json.dumps(zoo_document(ZOOS[wildcards.zoo], SETTINGS), sort_keys=True)


def population_fingerprint(wildcards):
    """Changes exactly when a population's trained outputs would change."""
    zoo = ZOOS[wildcards.zoo]
    members = [m.model_id for m in zoo.populations[wildcards.population]]
    return short_hash([members, list(zoo.checkpoints), zoo.raw.get("max_loss")])


def population_mem_mb(wildcards):
    """Memory from population size × parameters (checkpoints of every epoch kept in RAM)."""
    zoo = ZOOS[wildcards.zoo]
    n = len(zoo.populations[wildcards.population])
    return 1500 + n * len(zoo.checkpoints) // 4


def zoo_output_files(wildcards):
    """Everything the zoo is made of: spec, checkpoints and every catalogued table."""
    prefix = zoo_dir(wildcards.zoo) + "/"
    checkpoints = population_targets(f"{DATA}/zoos/{{zoo}}/checkpoints/{{population}}.safetensors")
    return [f"{prefix}spec.json"] + [f for f in checkpoints + CATALOG_INPUTS if f.startswith(prefix)]
