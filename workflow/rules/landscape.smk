# Loss-landscape metrics per population (Hessian, mode connectivity, CKA), with the lmc and
# merging tables of the same population (docs/analysis.md) in the same job: both read the
# same checkpoint, models table and dataset, and one process imports torch once. Then the
# phase labels + phase diagram per zoo. Rules only wire files to `zoo landscape` / `zoo phases`.


rule landscape:
    input:
        population=L.population_doc("{population}"),
        checkpoint=L.checkpoint("{population}"),
        models=L.table("models", "{population}"),
    output:
        landscape=L.table("landscape", "{population}"),
        lmc=L.table("lmc", "{population}"),
        merging=L.table("merging", "{population}"),
    log:
        L.log("landscape/{population}"),
    benchmark:
        L.benchmark("landscape/{population}")
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
    shell:
        "zoo landscape {input.checkpoint} --population {input.population} --models {input.models} "
        "--out {output.landscape} --lmc {output.lmc} --merging {output.merging} 2> {log}"


rule phases:
    input:
        # changed thresholds (the zoo's `phases:` object) must relabel, so the whole spec
        spec=L.spec,
        landscape=zoo_tables("landscape"),
        metrics=zoo_tables("metrics"),
        models=zoo_tables("models"),
    output:
        table=L.phases,
        figure=report(
            L.figure("phase_diagram.png"),
            caption="../report/phase_diagram.rst",
            category="{zoo}",
            subcategory="phases",
            labels={"figure": "phase diagram"},
        ),
    log:
        L.log("phases"),
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1500,
        runtime=10,
    shell:
        "zoo phases {input.spec} --landscape {input.landscape} --metrics {input.metrics} --models {input.models} "
        "--out {output.table} --figure {output.figure} > {log} 2>&1"


ZOO_OUTPUTS.append(
    lambda zoo: (
        layout(zoo).population_tables(populations(zoo), ("landscape",))
        if stage_applies(zoo, "landscape")
        else []
    )
    + (
        [layout(zoo).phases, layout(zoo).figure("phase_diagram.png")]
        if stage_applies(zoo, "phases")
        else []
    )
)
