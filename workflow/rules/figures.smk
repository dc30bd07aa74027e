# Report figures of every zoo beyond training: the weight-space learner benchmark (where the
# config has `learn:`) and the weight spectra (ESD per layer with WeightWatcher's power-law
# fit). Included after learn.smk (it reads LEARN) and before catalog.smk (which lists
# ZOO_OUTPUTS). Rules only wire files to `zoo figure …` (zoo/figures.py draws).


# Per zoo, its learner `results` files (none when the config runs no learners on it).
LEARNER_RESULTS = {
    z: [
        f
        for f in learn_outputs(layout(z), LEARN, list(ZOOS))
        if os.path.basename(f) == "results.parquet"
    ]
    for z in ZOOS
}


rule learner_figure:
    input:
        results=lambda w: LEARNER_RESULTS[w.zoo],
    output:
        report(
            L.figure("learner_results.png"),
            caption="../report/learner_results.rst",
            category="{zoo}",
            subcategory="learners",
            labels={"figure": "learner benchmark"},
        ),
    log:
        L.log("report/learner_figure"),
    localrule: True
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    shell:
        "zoo figure learners --results {input.results} --out {output} 2> {log}"


rule esd_figure:
    input:
        checkpoints=lambda w: [layout(w.zoo).checkpoint(p) for p in populations(w.zoo)],
        spectral=zoo_tables("spectral"),
        metrics=zoo_tables("metrics"),
        models=zoo_tables("models"),
    output:
        report(
            L.figure("esd.png"),
            caption="../report/esd.rst",
            category="{zoo}",
            subcategory="spectral",
            labels={"figure": "ESD per layer"},
        ),
    log:
        L.log("report/esd_figure"),
    localrule: True
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1500,
        runtime=10,
    params:
        n_models=3,
    shell:
        "zoo figure esd --checkpoints {input.checkpoints} --spectral {input.spectral} --metrics {input.metrics} "
        "--models {input.models} --n-models {params.n_models} --out {output} 2> {log}"


ZOO_OUTPUTS.append(
    lambda zoo: [layout(zoo).figure("esd.png")]
    + ([layout(zoo).figure("learner_results.png")] if LEARNER_RESULTS[zoo] else [])
)
