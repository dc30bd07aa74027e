# zoo: spec → population training → checkpoints, metrics, weights → DuckDB catalog.
# Rules only wire files to `zoo` CLI calls; all logic lives in the `zoo` package, and every
# path under data/ comes from zoo.layout.
from snakemake.utils import min_version

min_version("9.0")


# The embedded demo zoo is the default; `--configfile my.yaml` replaces it (not merges).
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


# Order matters: common.smk defines the layout and the ZOO_OUTPUTS registry, each stage
# file appends its outputs to it, and catalog.smk (last) lists them all.
include: "workflow/rules/common.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/extract.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/spectral.smk"
include: "workflow/rules/landscape.smk"
include: "workflow/rules/learn.smk"
include: "workflow/rules/analysis.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/catalog.smk"


onstart:
    # temporaries of killed writers (never those of a live process: concurrent runs stay safe)
    shell(
        "mkdir -p {DATA}/logs && zoo clean-tmp {DATA} >> {DATA}/logs/clean-tmp.log 2>&1 || true"
    )


rule all:
    default_target: True
    input:
        rules.catalog.output.db,
        FINAL_TARGETS,
