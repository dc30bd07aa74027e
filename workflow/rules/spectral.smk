# Spectral features (WeightWatcher conventions) of every weight matrix of every checkpoint.
rule spectral:
    input:
        f"{DATA}/zoos/{{zoo}}/checkpoints/{{population}}.safetensors",
    output:
        f"{DATA}/zoos/{{zoo}}/spectral/{{population}}.parquet",
    log:
        f"{DATA}/zoos/{{zoo}}/logs/spectral/{{population}}.log",
    benchmark:
        f"{DATA}/zoos/{{zoo}}/benchmarks/spectral/{{population}}.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    conda:
        ENV
    shell:
        "zoo spectral {input} --out {output} 2> {log}"


rule spectral_figures:
    input:
        spectral=lambda w: zoo_tables(w, ("spectral",)),
        metrics=lambda w: zoo_tables(w, ("metrics",)),
        models=lambda w: zoo_tables(w, ("models",)),
        spec=f"{DATA}/zoos/{{zoo}}/spec.json",
    output:
        report(
            f"{DATA}/zoos/{{zoo}}/figures/spectral_alpha.png",
            caption="../report/spectral_alpha.rst",
            category="{zoo}",
            subcategory="spectral",
            labels={"figure": "alpha vs generalisation"},
        ),
    params:
        zoo_dir=lambda w: zoo_dir(w.zoo),
    log:
        f"{DATA}/zoos/{{zoo}}/logs/spectral_figures.log",
    threads: 1
    resources:
        mem_mb=1500,
        runtime=10,
    conda:
        ENV
    shell:
        "zoo spectral-figures {params.zoo_dir} --out {output} 2> {log}"


CATALOG_INPUTS += population_targets(f"{DATA}/zoos/{{zoo}}/spectral/{{population}}.parquet")
FINAL_TARGETS += [f"{DATA}/zoos/{z}/figures/spectral_alpha.png" for z in ZOOS]
