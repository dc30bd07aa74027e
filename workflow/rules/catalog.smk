rule catalog:
    input:
        CATALOG_INPUTS,
    output:
        db=f"{DATA}/zoo.duckdb",
    params:
        data=lambda w, output: os.path.dirname(output.db) or ".",
    log:
        f"{DATA}/logs/catalog.log",
    conda:
        ENV
    localrule: True
    shell:
        "zoo catalog {params.data} --db {output.db} 2> {log}"


rule manifest:
    input:
        zoo_output_files,
    output:
        f"{DATA}/zoos/{{zoo}}/manifest.json",
    params:
        zoo_dir=lambda w, output: os.path.dirname(output[0]),
    log:
        f"{DATA}/zoos/{{zoo}}/logs/manifest.log",
    conda:
        ENV
    localrule: True
    shell:
        "zoo manifest {params.zoo_dir} {input} 2> {log}"


FINAL_TARGETS += [f"{DATA}/zoos/{z}/manifest.json" for z in ZOOS]
