# One job trains one population (up to settings.population_size models, one batched computation).
rule train:
    input:
        population=L.population_doc("{population}"),
    output:
        checkpoint=L.checkpoint("{population}"),
        models=L.table("models", "{population}"),
        metrics=L.table("metrics", "{population}"),
    log:
        L.log("train/{population}"),
    benchmark:
        L.benchmark("train/{population}")
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=population_mem_mb,
        runtime=60,
    params:
        resume=L.resume_state("{population}"),
    shell:
        "zoo train {input.population} --checkpoint {output.checkpoint} --models {output.models} "
        "--metrics {output.metrics} --resume {params.resume} 2> {log}"


ZOO_OUTPUTS.append(
    lambda zoo: [layout(zoo).checkpoint(p) for p in populations(zoo)]
    + layout(zoo).population_tables(populations(zoo), ("models", "metrics"))
)
