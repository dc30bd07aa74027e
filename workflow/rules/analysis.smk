# Figures of the weight-matrix analyses (docs/analysis.md): merging by phase and the spectral
# condition. The lmc and merging tables they read (linear mode connectivity of seed pairs
# before and after weight matching, merging gains per grid point) are written by the
# landscape rule (landscape.smk), in the same job as the landscape table of each population.
# Rules only wire files to `zoo` commands.


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
