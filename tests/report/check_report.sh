#!/usr/bin/env bash
# Render check of the Snakemake report (issues 9, 15). Run it in a workflow folder whose
# workflow has finished (`snakemake --cores 2`):
#
#   tests/report/check_report.sh [WORKDIR] [OUTDIR] [TARGET...]
#
# TARGETs restrict the report to the DAG of those files (default: the whole workflow;
# `snakemake --report` refuses when an output marked report() in that DAG is missing); the
# figures expected are then those TARGETs. Without TARGETs every zoo of the config must have
# the full workflow's figures: learning curves, grid heatmap, provenance, ESD, alpha figure,
# phase diagram, and the learner figure where the config runs learners on it — each with a
# caption. Then the report is opened in headless Chromium (Debian: apt-get install -y
# chromium) at 1,400 px and screenshots go to OUTDIR (default WORKDIR/report-check/): the
# landing page and each zoo's figures as shown inside the report. A blank screenshot, or a
# figure shrunk below 60 % of its width to fit the window (its labels would be unreadable),
# fails the check. Look at the PNGs: they are what a reader sees.
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
expect=()
if [ $# -gt 0 ]; then
  expect=(--expect)
  for t in "$@"; do case "$t" in */figures/*) expect+=("$(basename "$t")");; esac; done
fi
python "$here/check_report.py" report.html "$outdir" $zoos "${expect[@]}"
