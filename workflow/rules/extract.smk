rule weights:
    input:
        L.checkpoint("{population}"),
    output:
        L.table("weights", "{population}"),
    log:
        L.log("weights/{population}"),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    conda:
        ENV
    shell:
        "zoo weights {input} --out {output} 2> {log}"


ZOO_OUTPUTS.append(lambda zoo: layout(zoo).population_tables(populations(zoo), ("weights",)))
