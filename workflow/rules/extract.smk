rule weights:
    input:
        f"{DATA}/zoos/{{zoo}}/checkpoints/{{population}}.safetensors",
    output:
        f"{DATA}/zoos/{{zoo}}/weights/{{population}}.parquet",
    log:
        f"{DATA}/zoos/{{zoo}}/logs/weights/{{population}}.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    conda:
        ENV
    shell:
        "zoo weights {input} --out {output} 2> {log}"


CATALOG_INPUTS += population_targets(f"{DATA}/zoos/{{zoo}}/weights/{{population}}.parquet")
