# zoo: spec → population training → checkpoints, metrics, weights → DuckDB catalog.
# Rules only wire files to `zoo` CLI calls; all logic lives in the `zoo` package.
from snakemake.utils import min_version

min_version("9.0")


# The embedded demo zoo is the default; `--configfile my.yaml` replaces it (not merges).
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/extract.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/spectral.smk"
include: "workflow/rules/landscape.smk"
include: "workflow/rules/learn.smk"
include: "workflow/rules/catalog.smk"


rule all:
    input:
        rules.catalog.output.db,
        FINAL_TARGETS,
    default_target: True
