#!/usr/bin/env bash
# Installs the `zoo` package into the conda environment of environment.yml. Snakemake
# (--sdm conda) runs this once, right after creating the environment under
# .snakemake/conda/<hash>/, inside that environment and from the workflow's working
# directory; it runs a copy (.snakemake/conda/<hash>.post-deploy.sh), so the checkout is
# found through ZOO_SOURCE or the working directory, never through this file's path.
#
# The install is editable: jobs run the checkout's code, the same code the Snakefile
# imports to expand the specs, so editing zoo/ never leaves a stale copy in the env.
set -euo pipefail
src="${ZOO_SOURCE:-$PWD}"
if ! grep -qs '^name = "zoo"' "$src/pyproject.toml"; then
  echo "environment.post-deploy.sh: $src/pyproject.toml is not the zoo checkout;" \
       "run snakemake from the checkout or set ZOO_SOURCE=/path/to/checkout" >&2
  exit 1
fi
python -m pip install --quiet --disable-pip-version-check --no-deps -e "$src"
