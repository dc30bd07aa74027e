#!/usr/bin/env bash
# Render check of the Snakemake report (issue 9). Run it in a workflow folder whose
# workflow has finished (`snakemake --cores 2`):
#
#   tests/report/check_report.sh [WORKDIR] [OUTDIR] [TARGET...]
#
# TARGETs restrict the report to the DAG of those files (default: the whole workflow;
# `snakemake --report` refuses when an output marked report() in that DAG is missing).
# It builds WORKDIR/report.html with `snakemake --report`, checks that every zoo of the
# config has its category with learning curves, grid heatmap and provenance (each with a
# caption), then opens the report in headless Chromium (Debian: apt-get install -y
# chromium) and writes screenshots to OUTDIR (default WORKDIR/report-check/): the landing
# page and each zoo's figures as shown inside the report. A screenshot with almost no
# non-white pixels fails the check. Look at the PNGs: they are what a reader sees.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
workdir="$(cd "${1:-.}" && pwd)"
outdir="${2:-$workdir/report-check}"
mkdir -p "$outdir" && outdir="$(cd "$outdir" && pwd)"
shift $(( $# < 2 ? $# : 2 ))
cd "$workdir"
command -v chromium >/dev/null || { echo "check_report: chromium missing (apt-get install -y chromium)" >&2; exit 2; }
snakemake --report report.html "$@"
# the zoos to expect: $ZOOS if set, else every zoo of config/config.yaml
zoos=${ZOOS:-$(python -c "import yaml; print(' '.join(yaml.safe_load(open('config/config.yaml'))['zoos']))")}
python "$here/check_report.py" report.html "$outdir" $zoos
