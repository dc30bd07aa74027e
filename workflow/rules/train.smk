rule spec:
    output:
        f"{DATA}/zoos/{{zoo}}/spec.json",
    params:
        doc=spec_document,
    log:
        f"{DATA}/zoos/{{zoo}}/logs/spec.log",
    conda:
        ENV
    localrule: True
    shell:
        "zoo write-spec --json {params.doc:q} --out {output} 2> {log}"


rule train:
    input:
        spec=ancient(f"{DATA}/zoos/{{zoo}}/spec.json"),
    output:
        checkpoint=f"{DATA}/zoos/{{zoo}}/checkpoints/{{population}}.safetensors",
        models=f"{DATA}/zoos/{{zoo}}/models/{{population}}.parquet",
        metrics=f"{DATA}/zoos/{{zoo}}/metrics/{{population}}.parquet",
    params:
        fingerprint=population_fingerprint,
        outdir=lambda w: zoo_dir(w.zoo),
    log:
        f"{DATA}/zoos/{{zoo}}/logs/train/{{population}}.log",
    benchmark:
        f"{DATA}/zoos/{{zoo}}/benchmarks/train/{{population}}.tsv"
    threads: 1
    resources:
        mem_mb=population_mem_mb,
        runtime=60,
    conda:
        ENV
    shell:
        "zoo train {input.spec} --population {wildcards.population} --outdir {params.outdir} 2> {log}"


CATALOG_INPUTS += population_targets(f"{DATA}/zoos/{{zoo}}/models/{{population}}.parquet")
CATALOG_INPUTS += population_targets(f"{DATA}/zoos/{{zoo}}/metrics/{{population}}.parquet")
