"""Deploy the workflow from a local checkout as a Snakemake module (what ``snakedeploy`` does for a URL).

``snakedeploy deploy-workflow PATH DEST`` (0.17.1) writes ``snakefile: "Snakefile"`` for a
local ``PATH``: a path relative to the *deployed* ``DEST/workflow/Snakefile``, so the module
includes itself and Snakemake fails while parsing. :func:`deploy_local` writes the same
deployment — ``config/``, ``profiles/`` and ``LICENSE`` copied, a ``workflow/Snakefile``
that uses every rule of the checkout as the module ``zoo`` — with the checkout's Snakefile
as an absolute path, so ``snakemake --cores N`` runs in ``DEST`` without hand edits.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from zoo.atomic import atomic_path
from zoo.errors import ZooError

MODULE_TEMPLATE = """\
# Deployed by `zoo deploy` from {source}: this workflow uses every rule of that checkout as
# the module `zoo`; edit config/ here, and update the checkout to upgrade the workflow.
from snakemake.utils import min_version

min_version("9.0")


# The demo zoo is the default; `--configfile my.yaml` replaces it (not merges).
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


module zoo:
    snakefile:
        {snakefile}
    config:
        config


use rule * from zoo
"""


def checkout_root() -> Path | None:
    """The checkout this package runs from (editable install), or None for an installed wheel."""
    root = Path(__file__).resolve().parent.parent
    return root if (root / "Snakefile").is_file() and (root / "config").is_dir() else None


def deploy_local(source: str | Path | None, dest: str | Path, force: bool = False) -> Path:
    """Write a module deployment of the checkout ``source`` into ``dest``; return the deployed Snakefile."""
    src = Path(source).resolve() if source is not None else checkout_root()
    if src is None:
        raise ZooError("this zoo is not installed from a checkout; pass --source PATH to a zoo checkout")
    snakefile = src / "Snakefile"
    if not snakefile.is_file() or not (src / "config" / "config.yaml").is_file():
        raise ZooError(f"{src} is not a zoo checkout (it needs Snakefile and config/config.yaml); "
                       "pass --source PATH to one")
    out = Path(dest).resolve()
    if out == src or src in out.parents:
        raise ZooError(f"{out} lies inside the checkout {src}; choose a folder outside it")
    target = out / "workflow" / "Snakefile"
    existing = [p for p in (target, out / "config", out / "profiles") if p.exists()]
    if existing and not force:
        raise ZooError(f"{existing[0]} exists; pass --force to overwrite the deployment")
    out.mkdir(parents=True, exist_ok=True)
    for folder in ("config", "profiles"):
        if (src / folder).is_dir():
            shutil.copytree(src / folder, out / folder, dirs_exist_ok=force)
    if (src / "LICENSE").is_file():
        shutil.copy(src / "LICENSE", out / "LICENSE")
    target.parent.mkdir(exist_ok=True)
    with atomic_path(target) as tmp:
        tmp.write_text(MODULE_TEMPLATE.format(source=src, snakefile=json.dumps(str(snakefile))))
    return target
