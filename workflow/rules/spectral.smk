# Spectral features (WeightWatcher conventions) of every weight matrix of every checkpoint.
rule spectral:
    input:
        L.checkpoint("{population}"),
    output:
        L.table("spectral", "{population}"),
    log:
        L.log("spectral/{population}"),
    benchmark:
        L.benchmark("spectral/{population}")
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    shell:
        "zoo spectral {input} --out {output} 2> {log}"


rule spectral_figures:
    input:
        spec=L.spec,
        spectral=zoo_tables("spectral"),
        metrics=zoo_tables("metrics"),
        models=zoo_tables("models"),
    output:
        report(
            L.figure("spectral_alpha.png"),
            caption="../report/spectral_alpha.rst",
            category="{zoo}",
            subcategory="spectral",
            labels={"figure": "alpha vs generalisation"},
        ),
    log:
        L.log("spectral_figures"),
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1500,
        runtime=10,
    shell:
        "zoo spectral-figures --spec {input.spec} --spectral {input.spectral} --metrics {input.metrics} "
        "--models {input.models} --out {output} 2> {log}"


ZOO_OUTPUTS.append(
    lambda zoo: layout(zoo).population_tables(populations(zoo), ("spectral",))
    + (
        [layout(zoo).figure("spectral_alpha.png")]
        if stage_applies(zoo, "spectral_figures")
        else []
    )
)
