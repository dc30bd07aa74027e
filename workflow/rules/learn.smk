# Weight-space learner benchmark: one job per zoo × task × learner × augmentation (config `learn:`).
from zoo.learners.workflow import learn_args, learn_outputs

LEARN = config.get("learn", {})


wildcard_constraints:
    task="[a-z_]+",
    learner="[a-z-]+",
    augment="[a-z+-]+",


rule learn:
    input:
        weights=learn_input("weights"),
        models=learn_input("models"),
        metrics=learn_input("metrics"),
        spectral=learn_input("spectral"),
        phases=learn_input("phases"),
    output:
        results=L.learner_output("{task}", "{learner}", "{augment}", "results"),
        predictions=L.learner_output("{task}", "{learner}", "{augment}", "predictions"),
    log:
        L.learner_log("{task}", "{learner}", "{augment}"),
    benchmark:
        L.learner_benchmark("{task}", "{learner}", "{augment}")
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        args=learn_args(LEARN),
        spectral=lambda w, input: (
            f"--spectral {input.spectral}" if input.spectral else ""
        ),
        phases=lambda w, input: f"--phases {input.phases}" if input.phases else "",
    shell:
        "zoo learn --zoo {wildcards.zoo} --weights {input.weights} --models {input.models} --metrics {input.metrics} "
        "{params.spectral} {params.phases} --task {wildcards.task} --learner {wildcards.learner} "
        "--augment {wildcards.augment} {params.args} --results {output.results} "
        "--predictions {output.predictions} 2> {log}"


ZOO_OUTPUTS.append(lambda zoo: learn_outputs(layout(zoo), LEARN, list(ZOOS)))
