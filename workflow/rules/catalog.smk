# The catalog (every zoo's tables, loaded from exactly the files the current specs made) and
# each zoo's manifest. Included last: these rules read what every stage file appended to
# ZOO_OUTPUTS (the Snakefile's include order says so).


rule catalog:
    input:
        lambda w: [f for z in ZOOS for f in parquet_outputs(z)],
    output:
        db=f"{DATA}/zoo.duckdb",
    log:
        f"{DATA}/logs/catalog.log",
    localrule: True
    conda:
        ENV
    shell:
        "zoo catalog --db {output.db} {input} 2> {log}"


rule manifest:
    # Prunes what an older spec left in the zoo's folders (files no output of the current
    # spec names), then hashes every output, so `zoo verify` can flag anything else.
    input:
        lambda w: zoo_outputs(w.zoo),
    output:
        L.manifest,
    log:
        L.log("manifest"),
    localrule: True
    conda:
        ENV
    params:
        data=lambda w, output: os.path.dirname(
            os.path.dirname(os.path.dirname(output[0]))
        ),
    shell:
        "zoo prune --zoo {wildcards.zoo} --data {params.data} --keep {input} > {log} 2>&1 && "
        "zoo manifest --data {params.data} --out {output} {input} 2>> {log}"


FINAL_TARGETS += [layout(z).manifest for z in ZOOS]
