"""The package installs as a package, the install files agree, and the README keeps its two
set-up-and-go commands.

Three places name the dependencies: ``pyproject.toml`` (ranges; ``test`` extra for the test
tools), ``requirements.txt`` / ``requirements-test.txt`` (the exact pins we test with) and
``environment.yml`` (the conda env of the workflow's jobs, runtime pins only). These tests
keep them in step, and build a wheel to prove that an installed ``zoo`` finds its own data
files (the config schema) from any directory.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
import zipfile
from importlib.metadata import packages_distributions
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
#: Tools only the tests and benchmarks use; they must stay out of the runtime environment.
TEST_TOOLS = {"pytest", "pytest-timeout", "ruff", "weightwatcher", "powerlaw", "pyhessian"}


def pin_lines(path: Path) -> list[str]:
    """The requirement lines of a pip requirements file (comments and blanks dropped)."""
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [line for line in lines if line]


def pins(path: Path) -> dict[str, str]:
    """``{canonical name: version}`` of a file's own ``name==version`` lines (not its ``-r`` files)."""
    out = {}
    for line in pin_lines(path):
        if not line.startswith("-"):
            name, version = line.split("==")
            out[canonicalize_name(name)] = version
    return out


def ranges(specs: list[str]) -> dict[str, Requirement]:
    return {canonicalize_name(r.name): r for r in map(Requirement, specs)}


def env_pip_section() -> list[str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    return next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))


def third_party_imports(folder: Path) -> set[str]:
    """Top-level modules imported anywhere under ``folder`` that are neither stdlib nor local."""
    local = {p.stem for p in folder.glob("*.py")} | {"zoo"}
    mods = set()
    for f in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(f.read_text(), filename=str(f))):
            if isinstance(node, ast.Import):
                mods |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                mods.add(node.module.split(".")[0])
    return mods - set(sys.stdlib_module_names) - local - {"__future__"}


def distributions_of(modules: set[str]) -> set[str]:
    """The installed distributions that provide ``modules`` (canonical names)."""
    owners = packages_distributions()
    return {canonicalize_name(d) for m in modules for d in owners.get(m, [m])}


# ── the pin files agree ─────────────────────────────────────────────────────────────


def test_environment_yml_pins_exactly_requirements_txt():
    reqs = set(pin_lines(ROOT / "requirements.txt"))
    assert set(env_pip_section()) == reqs
    assert all(re.fullmatch(r"[A-Za-z0-9_.\-]+==[\w.]+", r) for r in reqs), "every requirement is pinned exactly"
    assert "torch==2.13.0" in reqs


def test_environment_yml_survives_being_copied_under_snakemake_conda():
    # Snakemake (--sdm conda) creates the env from a copy at .snakemake/conda/<hash>.yaml, so
    # any relative path in it (`-e .`, `./`, `file:`) would point into .snakemake/conda/.
    for line in env_pip_section():
        assert not line.startswith("-"), f"environment.yml: pip option {line!r} breaks in the copied env file"
        assert not re.search(r"(^|[\s@])(\.{1,2}(/|$)|/|file:)", line), f"environment.yml: path {line!r}"
    deploy = ROOT / "environment.post-deploy.sh"  # Snakemake's name for the env's post-deploy script
    assert deploy.is_file(), "the zoo package reaches the env through environment.post-deploy.sh"
    assert "--no-deps -e" in deploy.read_text(), "only zoo itself, never the pinned dependencies"


def test_test_tools_stay_out_of_the_runtime_pins():
    runtime, test = pins(ROOT / "requirements.txt"), pins(ROOT / "requirements-test.txt")
    assert not TEST_TOOLS & set(runtime), "test tools belong in requirements-test.txt"
    assert not TEST_TOOLS & {canonicalize_name(Requirement(p).name) for p in env_pip_section()}
    assert TEST_TOOLS <= set(test)
    # One pip call must resolve the test tools beside torch==2.13.0 (else pip picks CUDA torch).
    assert "-r requirements.txt" in pin_lines(ROOT / "requirements-test.txt")


def test_pyproject_ranges_hold_every_pin():
    project = PYPROJECT["project"]
    for declared, pinned in [
        (ranges(project["dependencies"]), pins(ROOT / "requirements.txt")),
        (ranges(project["optional-dependencies"]["test"]), pins(ROOT / "requirements-test.txt")),
    ]:
        assert set(declared) == set(pinned), "pyproject.toml and the pin file name the same packages"
        for name, req in declared.items():
            assert req.specifier.contains(pinned[name]), f"{name}=={pinned[name]} is outside {req}"
    # The local wheel is 2.13.0+cpu; the range must accept it and keep 2.14 out.
    torch = ranges(project["dependencies"])["torch"].specifier
    assert torch.contains("2.13.0+cpu") and not torch.contains("2.14.0")


def test_declared_dependencies_cover_every_import():
    runtime = set(ranges(PYPROJECT["project"]["dependencies"]))
    test = set(ranges(PYPROJECT["project"]["optional-dependencies"]["test"]))
    package = distributions_of(third_party_imports(ROOT / "zoo"))
    assert package <= runtime, f"zoo/ imports undeclared packages: {sorted(package - runtime)}"
    assert not package & TEST_TOOLS, "the package must run without the test tools"
    for folder in ("tests", "benchmarks"):
        used = distributions_of(third_party_imports(ROOT / folder))
        assert used <= runtime | test, f"{folder}/ imports undeclared packages: {sorted(used - runtime - test)}"


def test_makefile_installs_runtime_and_test_pins_in_one_pip_call():
    text = (ROOT / "Makefile").read_text()
    recipe = text.split("$(VENV)/.installed:", 1)[1].split("\n\n", 1)[0]
    assert re.search(r"-r requirements\.txt -r requirements-test\.txt", recipe)
    assert "--no-deps -e ." in recipe


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    assert "make demo" in readme and "make test" in readme
    assert "make test" in (ROOT / ".ci/run").read_text()


# ── the package installs as a package ───────────────────────────────────────────────


def source_copy(dest: Path) -> Path:
    """What a wheel is built from, copied so that builds never write into the checkout."""
    dest.mkdir(parents=True)
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy2(ROOT / name, dest / name)
    shutil.copytree(ROOT / "zoo", dest / "zoo", ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.so"))
    return dest


def run(*cmd: str | Path, cwd: Path, env: dict | None = None) -> str:
    out = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, f"{' '.join(map(str, cmd))}\n{out.stdout}\n{out.stderr}"
    return out.stdout


def fresh_venv(path: Path) -> Path:
    """A new venv (its own pip); its ``python``."""
    run(sys.executable, "-m", "venv", path, cwd=path.parent)
    return path / "bin" / "python"


def borrow_dependencies(python: Path) -> None:
    """Let ``python``'s venv import this venv's installed packages without reinstalling them.

    A path line in a ``.pth`` file only extends ``sys.path``; ``.pth`` files inside that
    folder are not run, so the editable ``zoo`` finder of this venv stays inert there.
    """
    site = run(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))", cwd=python.parent).strip()
    ours = next(p for p in sys.path if p.endswith("site-packages") and Path(p, "torch").is_dir())
    Path(site, "zoo-test-borrowed-deps.pth").write_text(ours + "\n")


TINY_ZOO = """
import os, sys
from pathlib import Path
sys.path.insert(0, sys.argv[2])  # tests/, for tiny_zoo (it holds no zoo/ to shadow the wheel)
import torch
import zoo, zoo.api
from tiny_zoo import make_tiny_zoo
data = Path(sys.argv[1])
make_tiny_zoo(data, {"zoos": {"tiny": {
    "dataset": "digits", "model": {"arch": "mlp", "depth": 1, "activation": "relu"},
    "grid": {"width": [4]}, "seeds": [0, 1], "epochs": 1, "checkpoints": [0, 1], "batch_size": 64,
    "optimizer": {"name": "sgd", "momentum": 0.9}}}})
os.chdir(sys.argv[3])
model_id = zoo.api.frame("SELECT min(model_id) AS m FROM models", data).m[0]
print(tuple(zoo.api.load_model(model_id, 1, data)(torch.zeros(3, 1, 8, 8)).shape))
print(zoo.__file__)
"""


def test_wheel_installs_and_works_from_any_directory(tmp_path):
    """Build a wheel, install it alone into a new venv, and use validate/query/load_model elsewhere."""
    t0 = time.perf_counter()
    src = source_copy(tmp_path / "src")
    run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", tmp_path / "dist", src, cwd=src)
    (wheel,) = (tmp_path / "dist").glob("zoo-*.whl")
    shipped = set(zipfile.ZipFile(wheel).namelist())
    assert "zoo/schemas/config.schema.yaml" in shipped
    data_files = {p.relative_to(src).as_posix() for p in (src / "zoo").rglob("*")
                  if p.is_file() and p.suffix not in {".py", ".pyc", ".c"}}  # C sources ship compiled
    assert data_files <= shipped, f"package data missing from the wheel: {sorted(data_files - shipped)}"
    assert any(re.fullmatch(r"zoo/_fused\..*\.so", name) for name in shipped), "zoo._fused was not compiled into the wheel"

    new = tmp_path / "new"
    python = fresh_venv(new)
    run(python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", wheel, cwd=tmp_path)
    borrow_dependencies(python)  # only after installing, so pip never sees this venv's editable zoo

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV"}}
    out = run(new / "bin" / "zoo", "validate", ROOT / "config" / "config.yaml", cwd=elsewhere, env=env)
    assert re.search(r"digits-mlp: \d+ models in \d+ populations", out), out

    # Train a tiny zoo with the installed package, then load a model from yet another folder.
    other = tmp_path / "other"
    other.mkdir()
    script = tmp_path / "tiny_zoo.py"
    script.write_text(TINY_ZOO)
    data = elsewhere / "data"
    *_, shape, zoo_file = run(python, script, data, ROOT / "tests", other, cwd=elsewhere, env=env).splitlines()
    assert Path(zoo_file).is_relative_to(new), f"zoo imported from {zoo_file}, not from the wheel's venv"
    assert shape == "(3, 10)"
    rows = json.loads(run(new / "bin" / "zoo", "query", "--db", data / "zoo.duckdb", "--format", "json",
                          "SELECT model_id FROM models", cwd=other, env=env))
    assert len(rows) == 2
    print(f"wheel build + install + validate/query/load_model: {time.perf_counter() - t0:.1f} s")


def test_post_deploy_script_refuses_a_directory_that_is_not_the_checkout(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "ZOO_SOURCE"}
    out = subprocess.run(["bash", ROOT / "environment.post-deploy.sh"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    assert "ZOO_SOURCE" in out.stderr and "Traceback" not in out.stderr


def test_post_deploy_script_installs_the_checkout_into_the_env(tmp_path):
    """What Snakemake does after creating the env: run a copy of the script, env activated."""
    src = source_copy(tmp_path / "workdir")
    python = fresh_venv(tmp_path / "env")
    copy = src / ".snakemake" / "conda" / "0123abcd.post-deploy.sh"
    copy.parent.mkdir(parents=True)
    shutil.copy2(ROOT / "environment.post-deploy.sh", copy)
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "ZOO_SOURCE"}}
    env |= {"PATH": f"{python.parent}{os.pathsep}{env['PATH']}", "VIRTUAL_ENV": str(python.parent.parent)}
    run("bash", copy, cwd=src, env=env)
    borrow_dependencies(python)
    zoo_file = run(python, "-c", "import zoo.config as c; print(c.__file__); print(c.SCHEMA_PATH.is_file())",
                   cwd=tmp_path, env=env).split()
    assert Path(zoo_file[0]).is_relative_to(src) and zoo_file[1] == "True", zoo_file
