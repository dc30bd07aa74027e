# Figures of every zoo for `snakemake --report report.html`: learning curves, final accuracy
# over the grid, and the run's provenance. Each output is a report() item with a caption
# (workflow/report/*.rst), category = the zoo, subcategory = what it shows.


rule learning_curves:
    input:
        models=zoo_tables("models"),
        metrics=zoo_tables("metrics"),
    output:
        report(
            L.figure("learning_curves.png"),
            caption="../report/learning_curves.rst",
            category="{zoo}",
            subcategory="training",
            labels={"figure": "learning curves"},
        ),
    log:
        L.log("report/learning_curves"),
    localrule: True
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        n_models=12,
    shell:
        "zoo plot curves --models {input.models} --metrics {input.metrics} --n-models {params.n_models} "
        "--out {output} 2> {log}"


rule grid_accuracy:
    input:
        models=zoo_tables("models"),
        metrics=zoo_tables("metrics"),
    output:
        report(
            L.figure("grid_test_acc.png"),
            caption="../report/grid_accuracy.rst",
            category="{zoo}",
            subcategory="training",
            labels={"figure": "test accuracy over the grid"},
        ),
    log:
        L.log("report/grid_accuracy"),
    localrule: True
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        metric=lambda w: grid_metric(ZOOS[w.zoo].raw),
    shell:
        "zoo plot grid --models {input.models} --metrics {input.metrics} --metric {params.metric} --out {output} 2> {log}"


rule provenance:
    input:
        spec=L.spec,
        models=zoo_tables("models"),
        metrics=zoo_tables("metrics"),
    output:
        report(
            L.figure("provenance.html"),
            caption="../report/provenance.rst",
            category="{zoo}",
            subcategory="provenance",
            labels={"figure": "provenance"},
        ),
    log:
        L.log("report/provenance"),
    localrule: True
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        benchmarks=lambda w: [
            layout(w.zoo).benchmark(f"train/{p}") for p in populations(w.zoo)
        ],
    shell:
        "zoo plot provenance --spec {input.spec} --models {input.models} --metrics {input.metrics} "
        "--benchmarks {params.benchmarks} --out {output} 2> {log}"


ZOO_OUTPUTS.append(
    lambda zoo: [
        layout(zoo).figure(n)
        for n in ("learning_curves.png", "grid_test_acc.png", "provenance.html")
    ]
)
