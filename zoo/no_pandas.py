"""Keep pandas out of the per-population jobs that never use it (their start-up).

pyarrow 26 imports pandas the first time any array is built or written (``pa.array``,
``pa.table``, ``Table.from_pylist``, ``pq.write_table``): its Python shim and its C++
conversion layer both probe for pandas, to recognise pandas objects. In a job that never
touches pandas that is 0.3–0.5 CPU-s of start-up — paid by every train, weights and
landscape job, and more than all their other imports except torch.

:func:`forbid_pandas`, called by ``zoo.cli.main`` first thing for the commands registered
with ``without_pandas=True``, makes ``import pandas`` fail for the rest of the process. Both
probes take a failed import as "no pandas" and carry on (tested: tests/test_no_pandas.py);
anything that really needs pandas gets a ``ModuleNotFoundError`` that names this module, not
a silent change. Library functions do not call it (a user's session may well use pandas),
only those job commands.
"""

from __future__ import annotations

import sys
from importlib.abc import MetaPathFinder


class PandasForbidden(MetaPathFinder):
    """Import finder refusing ``pandas`` and its submodules."""

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        if name == "pandas" or name.startswith("pandas."):
            raise ModuleNotFoundError(
                f"pandas is not loaded in this zoo job (zoo.no_pandas.forbid_pandas: it saves ~0.4 s of start-up "
                f"per job); the job's code asked for {name!r}: use it outside the job, or drop the forbid_pandas call",
                name=name)
        return None


def forbid_pandas() -> bool:
    """Refuse ``import pandas`` in this process from now on, unless pandas is already imported.

    Returns whether the refusal was installed. Idempotent.
    """
    if "pandas" in sys.modules:
        return False
    if not any(isinstance(f, PandasForbidden) for f in sys.meta_path):
        sys.meta_path.insert(0, PandasForbidden())
    return True
