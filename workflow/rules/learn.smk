# Weight-space learner benchmark: one job per zoo × task × learner × augmentation (config `learn:`).
from zoo.learners.workflow import learn_args, learn_inputs, learn_targets

LEARN = config.get("learn", {})


wildcard_constraints:
    task="[a-z_]+",
    learner="[a-z-]+",
    augment="[a-z+-]+",


rule learn:
    input:
        lambda w: learn_inputs(
            zoo_dir(w.zoo),
            ZOOS[w.zoo].populations,
            w.task,
            w.learner,
            LEARN,
            has_spectral=hasattr(rules, "spectral"),
            has_phases=hasattr(rules, "phases"),
        ),
    output:
        results=f"{DATA}/learners/{{zoo}}/{{task}}/{{learner}}/{{augment}}/results.parquet",
        predictions=f"{DATA}/learners/{{zoo}}/{{task}}/{{learner}}/{{augment}}/predictions.parquet",
    params:
        zoo_dir=lambda w: zoo_dir(w.zoo),
        outdir=lambda w, output: os.path.dirname(output.results),
        args=learn_args(LEARN),
    log:
        f"{DATA}/learners/{{zoo}}/logs/{{task}}-{{learner}}-{{augment}}.log",
    benchmark:
        f"{DATA}/learners/{{zoo}}/benchmarks/{{task}}-{{learner}}-{{augment}}.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    conda:
        ENV
    shell:
        "zoo learn {params.zoo_dir} --task {wildcards.task} --learner {wildcards.learner} "
        "--augment {wildcards.augment} {params.args} --outdir {params.outdir} 2> {log}"


CATALOG_INPUTS += learn_targets(DATA, LEARN, ZOOS) if LEARN else []
