rule weights:
    input:
        L.checkpoint("{population}"),
    output:
        L.table("weights", "{population}"),
    log:
        L.log("weights/{population}"),
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    shell:
        "zoo weights {input} --out {output} 2> {log}"


ZOO_OUTPUTS.append(
    lambda zoo: layout(zoo).population_tables(populations(zoo), ("weights",))
)
