# Figures of every zoo for `snakemake --report report.html`: learning curves, final accuracy
# over the grid, and the run's provenance. Each output is a report() item with a caption
# (workflow/report/*.rst), category = the zoo, subcategory = what it shows.
# zoo_tables (common.smk) lists a zoo's models + metrics Parquet files.


rule learning_curves:
    input:
        zoo_tables,
    output:
        report(
            f"{DATA}/zoos/{{zoo}}/figures/learning_curves.png",
            caption="../report/learning_curves.rst",
            category="{zoo}",
            subcategory="training",
            labels={"figure": "learning curves"},
        ),
    params:
        zoo_dir=lambda w: zoo_dir(w.zoo),
        n_models=12,
    log:
        f"{DATA}/zoos/{{zoo}}/logs/report/learning_curves.log",
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        ENV
    localrule: True
    shell:
        "zoo plot curves {params.zoo_dir} --n-models {params.n_models} --out {output} 2> {log}"


rule grid_accuracy:
    input:
        zoo_tables,
    output:
        report(
            f"{DATA}/zoos/{{zoo}}/figures/grid_test_acc.png",
            caption="../report/grid_accuracy.rst",
            category="{zoo}",
            subcategory="training",
            labels={"figure": "test accuracy over the grid"},
        ),
    params:
        zoo_dir=lambda w: zoo_dir(w.zoo),
    log:
        f"{DATA}/zoos/{{zoo}}/logs/report/grid_accuracy.log",
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        ENV
    localrule: True
    shell:
        "zoo plot grid {params.zoo_dir} --metric test_acc --out {output} 2> {log}"


rule provenance:
    input:
        zoo_tables,
        spec=f"{DATA}/zoos/{{zoo}}/spec.json",
    output:
        report(
            f"{DATA}/zoos/{{zoo}}/figures/provenance.html",
            caption="../report/provenance.rst",
            category="{zoo}",
            subcategory="provenance",
            labels={"figure": "provenance"},
        ),
    params:
        zoo_dir=lambda w: zoo_dir(w.zoo),
    log:
        f"{DATA}/zoos/{{zoo}}/logs/report/provenance.log",
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        ENV
    localrule: True
    shell:
        "zoo plot provenance {params.zoo_dir} --out {output} 2> {log}"


FINAL_TARGETS += [
    f"{DATA}/zoos/{zoo}/figures/{name}"
    for zoo in ZOOS
    for name in ("learning_curves.png", "grid_test_acc.png", "provenance.html")
]
