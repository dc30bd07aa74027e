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
