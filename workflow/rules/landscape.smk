# Loss-landscape metrics per population (Hessian, mode connectivity, CKA) and the phase
# labels + phase diagram per zoo. Rules only wire files to `zoo landscape` / `zoo phases`.


rule landscape:
    input:
        spec=ancient(f"{DATA}/zoos/{{zoo}}/spec.json"),
        checkpoint=f"{DATA}/zoos/{{zoo}}/checkpoints/{{population}}.safetensors",
        models=f"{DATA}/zoos/{{zoo}}/models/{{population}}.parquet",
    output:
        f"{DATA}/zoos/{{zoo}}/landscape/{{population}}.parquet",
    log:
        f"{DATA}/zoos/{{zoo}}/logs/landscape/{{population}}.log",
    benchmark:
        f"{DATA}/zoos/{{zoo}}/benchmarks/landscape/{{population}}.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    conda:
        ENV
    shell:
        "zoo landscape {input.checkpoint} --spec {input.spec} --models {input.models} --out {output} 2> {log}"


rule phases:
    input:
        # not ancient: changed thresholds (the zoo's `phases:` object) must relabel
        spec=f"{DATA}/zoos/{{zoo}}/spec.json",
        landscape=lambda w: zoo_tables(w, ("landscape",)),
        metrics=lambda w: zoo_tables(w, ("metrics",)),
        models=lambda w: zoo_tables(w, ("models",)),
    output:
        table=f"{DATA}/zoos/{{zoo}}/phases.parquet",
        figure=report(
            f"{DATA}/zoos/{{zoo}}/figures/phase_diagram.png",
            caption="../report/phase_diagram.rst",
            category="{zoo}",
            subcategory="phases",
            labels={"figure": "phase diagram"},
        ),
    params:
        zoo_dir=lambda w: zoo_dir(w.zoo),
    log:
        f"{DATA}/zoos/{{zoo}}/logs/phases.log",
    threads: 1
    resources:
        mem_mb=1500,
        runtime=10,
    conda:
        ENV
    shell:
        "zoo phases {input.spec} --zoo-dir {params.zoo_dir} --out {output.table} --figure {output.figure} > {log} 2>&1"


CATALOG_INPUTS += population_targets(f"{DATA}/zoos/{{zoo}}/landscape/{{population}}.parquet")
CATALOG_INPUTS += [f"{DATA}/zoos/{z}/phases.parquet" for z in ZOOS]
FINAL_TARGETS += [f"{DATA}/zoos/{z}/figures/phase_diagram.png" for z in ZOOS]
