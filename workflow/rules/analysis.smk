# Weight-matrix analyses (docs/analysis.md): linear mode connectivity of seed pairs before and
# after weight matching and merging gains per grid point (one job per population, on the
# stacked tensors), and the figures of merging by phase and of the spectral condition.
# Rules only wire files to `zoo` commands.


rule lmc_merging:
    input:
        population=L.population_doc("{population}"),
        checkpoint=L.checkpoint("{population}"),
        models=L.table("models", "{population}"),
    output:
        lmc=L.table("lmc", "{population}"),
        merging=L.table("merging", "{population}"),
    log:
        L.log("lmc_merging/{population}"),
    benchmark:
        L.benchmark("lmc_merging/{population}")
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    shell:
        "zoo lmc-merging {input.checkpoint} --population {input.population} --models {input.models} "
        "--lmc {output.lmc} --merging {output.merging} 2> {log}"


rule merging_figure:
    input:
        merging=zoo_tables("merging"),
        lmc=zoo_tables("lmc"),
        phases=L.phases,
    output:
        report(
            L.figure("merging_phases.png"),
            caption="../report/merging_phases.rst",
            category="{zoo}",
            subcategory="merging",
            labels={"figure": "merging gain by phase"},
        ),
    log:
        L.log("report/merging_figure"),
    localrule: True
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    shell:
        "zoo merging-figure --merging {input.merging} --lmc {input.lmc} --phases {input.phases} --out {output} 2> {log}"


rule spectral_condition_figure:
    input:
        spectral=zoo_tables("spectral"),
        models=zoo_tables("models"),
    output:
        report(
            L.figure("spectral_condition.png"),
            caption="../report/spectral_condition.rst",
            category="{zoo}",
            subcategory="spectral",
            labels={"figure": "spectral condition vs width"},
        ),
    log:
        L.log("report/spectral_condition_figure"),
    localrule: True
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    shell:
        "zoo spectral-condition-figure --spectral {input.spectral} --models {input.models} --out {output} 2> {log}"


ZOO_OUTPUTS.append(
    lambda zoo: (
        layout(zoo).population_tables(populations(zoo), ("lmc", "merging"))
        if stage_applies(zoo, "lmc_merging")
        else []
    )
    + (
        [layout(zoo).figure("merging_phases.png")]
        if stage_applies(zoo, "merging_figure")
        else []
    )
    + [layout(zoo).figure("spectral_condition.png")]
)
