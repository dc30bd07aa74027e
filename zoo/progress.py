"""Training progress: bars that read well in log files, and ``zoo status``, which reads them back.

**Bars.** On a terminal, tqdm redraws one line with carriage returns. Redirected to a log
file (every Snakemake rule does ``2> {log}``), those redraws pile up on one line; there,
:func:`progress_stream` gives tqdm a stream that turns every redraw into its own line,
so ``tail -f`` and ``grep`` show models, diverged models and the ETA as they change.

**Status.** Snakemake's terminal shows rule blocks, not what a training job is doing. Rather
than a Snakemake logger plugin (it would have to be a separate installed package,
``snakemake-logger-plugin-*``, would replace Snakemake's own output, and would see only
job start/finish events, not epochs), ``zoo status`` reads what the jobs already write,
so it works beside any run — local, ``--profile slurm``, or one started by someone else —
and after it, and needs nothing but the data folder:

- the zoo's ``spec.json`` says which populations exist and how many models and epochs each has;
- a population is **trained** when its checkpoint, models and metrics files all exist and
  are not older than its population document (what Snakemake itself compares);
- otherwise it is **training** when its train log (``logs/train/<pop>.log``) is newer than
  that document: the last progress line gives epochs done, diverged models and tqdm's
  ETA, and the log's age says when the job last reported (a log that stops moving for
  minutes belongs to a job that was killed or is stuck); **failed** when the log ends in
  an error line; **waiting** when there is no current log yet.

The zoo's ETA is a rough estimate: the running populations' remaining time plus, for
waiting ones, the mean time a population took so far, divided over the populations that
train at once.
"""

from __future__ import annotations

import io
import re
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TextIO


class LineStream(io.TextIOBase):
    """A text stream for tqdm that writes each redraw as one plain line."""

    def __init__(self, stream: TextIO):
        self.stream = stream
        self.last = ""

    def write(self, s: str) -> int:
        for line in s.replace("\r", "\n").split("\n"):
            line = line.rstrip()
            if line and line != self.last:  # tqdm redraws unchanged bars on close
                self.stream.write(line + "\n")
                self.last = line
        return len(s)

    def flush(self) -> None:
        self.stream.flush()


def progress_stream(stream: TextIO | None = None) -> TextIO:
    """``stream`` (default stderr) itself on a terminal, else a :class:`LineStream` over it."""
    stream = stream or sys.stderr
    return stream if is_tty(stream) else LineStream(stream)


def is_tty(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


# ------------------------------------------------------------------------------ reading logs

#: One tqdm line of :func:`zoo.train._progress_bar`, e.g.
#: ``digits-mlp/mlp-2b49b18716:  65%|######5   | 13/20 [00:10<00:05,  1.31epoch/s, diverged=3, models=15]``
PROGRESS_LINE = re.compile(
    r"^(?P<label>\S+): +\d+%\|[^|]*\| *(?P<n>\d+)/(?P<total>\d+) "
    r"\[(?P<elapsed>[0-9:]+)<(?P<remaining>[0-9:?]+)(?P<rest>[^\]]*)\]\s*$")
#: The line :func:`zoo.jobs.train` ends a successful job with.
DONE_LINE = re.compile(r"^(?P<label>\S+): trained (?P<models>\d+) models \((?P<diverged>\d+) diverged\) "
                       r"in (?P<seconds>[0-9.]+) s")
#: The one-line error of the ``zoo`` CLI (``zoo train: error: …``) or a Python traceback.
ERROR_LINE = re.compile(r"^(zoo \S+: (error|terminated|interrupted)\b|Traceback )")


def parse_clock(text: str) -> float | None:
    """tqdm's ``[H:]MM:SS`` as seconds; ``?`` (unknown) as None."""
    if not text or "?" in text:
        return None
    seconds = 0.0
    for part in text.split(":"):
        seconds = seconds * 60 + float(part)
    return seconds


@dataclass
class LogState:
    """What a train log says: the last progress line, whether it finished, or failed."""

    epoch: int | None = None
    epochs: int | None = None
    diverged: int | None = None
    elapsed_s: float | None = None
    remaining_s: float | None = None
    done_s: float | None = None
    error: str | None = None


def read_train_log(path: str | Path) -> LogState:
    """Parse a train log (see :data:`PROGRESS_LINE`, :data:`DONE_LINE`); a missing file is an empty state."""
    state = LogState()
    try:
        text = Path(path).read_text(errors="replace")
    except FileNotFoundError:
        return state
    for line in text.splitlines():
        line = line.rstrip()
        if m := PROGRESS_LINE.match(line):
            state.epoch, state.epochs = int(m["n"]), int(m["total"])
            state.elapsed_s, state.remaining_s = parse_clock(m["elapsed"]), parse_clock(m["remaining"])
            d = re.search(r"diverged=(\d+)", m["rest"])
            state.diverged = int(d.group(1)) if d else state.diverged
            state.error = None  # a later attempt (rerun) writes on
        elif m := DONE_LINE.match(line):
            state.done_s, state.diverged = float(m["seconds"]), int(m["diverged"])
        elif ERROR_LINE.match(line):
            state.error = line[:200]
    return state


# ------------------------------------------------------------------------------ status model

@dataclass
class PopulationStatus:
    population: str
    models: int
    epochs: int
    state: str  # trained | training | failed | waiting
    epoch: int | None = None
    diverged: int | None = None
    eta_s: float | None = None
    duration_s: float | None = None
    updated_s_ago: float | None = None
    note: str = ""


@dataclass
class ZooStatus:
    zoo: str
    populations: list[PopulationStatus] = field(default_factory=list)

    def count(self, state: str) -> int:
        return sum(p.state == state for p in self.populations)

    @property
    def models(self) -> int:
        return sum(p.models for p in self.populations)

    @property
    def models_trained(self) -> int:
        return sum(p.models for p in self.populations if p.state == "trained")

    @property
    def diverged(self) -> int:
        return sum(p.diverged or 0 for p in self.populations if p.state in ("trained", "training"))

    @property
    def finished(self) -> bool:
        return all(p.state in ("trained", "failed") for p in self.populations)

    @property
    def eta_s(self) -> float | None:
        """Rough time left: running populations' ETA plus waiting ones at the mean population time so far."""
        running = [p for p in self.populations if p.state == "training"]
        waiting = self.count("waiting")
        if not running and not waiting:
            return 0.0
        known = [p.duration_s for p in self.populations if p.state in ("trained", "training") and p.duration_s]
        mean = sum(known) / len(known) if known else None
        left = [p.eta_s for p in running]
        if any(v is None for v in left) or (waiting and mean is None):
            return None
        parallel = max(1, len(running))
        return (sum(left) + waiting * mean) / parallel if waiting else max(left)

    def as_dict(self) -> dict:
        return {"zoo": self.zoo, "models": self.models, "models_trained": self.models_trained,
                "diverged": self.diverged, "eta_s": self.eta_s,
                "populations": [asdict(p) for p in self.populations]}


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return None


def _diverged_in_table(path: Path) -> int | None:
    import pyarrow.parquet as pq

    try:
        col = pq.read_table(path, columns=["diverged_epoch"])["diverged_epoch"]
    except Exception:  # unreadable: report the population without the count
        return None
    return len(col) - col.null_count


def population_status(layout, population: str, models: int, epochs: int, now: float | None = None) -> PopulationStatus:
    """The state of one population from its files and train log (see the module docstring)."""
    now = time.time() if now is None else now
    doc = _mtime(Path(layout.population_doc(population)))
    outputs = [Path(layout.checkpoint(population)), Path(layout.table("models", population)),
               Path(layout.table("metrics", population))]
    times = [_mtime(p) for p in outputs]
    log_path = Path(layout.log(f"train/{population}"))
    log_time = _mtime(log_path)
    current_log = log_time is not None and (doc is None or log_time >= doc)
    log = read_train_log(log_path) if current_log else LogState()
    st = PopulationStatus(population, models, epochs, "waiting")
    if doc is not None and all(t is not None and t >= doc for t in times):
        st.state, st.epoch = "trained", epochs
        st.diverged = log.diverged if log.done_s is not None else _diverged_in_table(outputs[1])
        st.duration_s = log.done_s
        return st
    if not current_log:
        return st
    st.updated_s_ago = max(0.0, now - log_time)
    st.epoch, st.diverged = log.epoch, log.diverged
    if log.error:
        st.state, st.note = "failed", log.error
        return st
    st.state = "training"
    st.eta_s = 0.0 if log.done_s is not None else log.remaining_s
    if log.elapsed_s is not None and log.remaining_s is not None:
        st.duration_s = log.elapsed_s + log.remaining_s
    return st


def zoo_status(data: str | Path = "data", zoos: Sequence[str] | None = None, now: float | None = None) -> list[ZooStatus]:
    """The status of every zoo under ``data`` (those with a ``spec.json``), or of ``zoos``."""
    from zoo.errors import DataError
    from zoo.jobs import read_spec
    from zoo.layout import ZooLayout

    data = Path(data)
    names = list(zoos) if zoos else sorted(p.parent.name for p in data.glob("zoos/*/spec.json"))
    if not names:
        raise DataError(f"{data}: no zoo has a spec.json yet; start the workflow (snakemake --cores 2) first")
    out = []
    for name in names:
        layout = ZooLayout(str(data), name)
        spec = read_spec(layout.spec)
        epochs = int(spec.raw.get("epochs", 0))
        out.append(ZooStatus(name, [population_status(layout, pop, len(members), epochs, now)
                                    for pop, members in spec.populations.items()]))
    return out


# ------------------------------------------------------------------------------ rendering

def clock(seconds: float | None) -> str:
    """``95`` → ``'1:35'``, ``3725`` → ``'1:02:05'``; unknown → ``'?'``."""
    if seconds is None:
        return "?"
    s = int(round(seconds))
    h, rem = divmod(s, 3600)
    return f"{h}:{rem // 60:02d}:{rem % 60:02d}" if h else f"{rem // 60}:{rem % 60:02d}"


def summary_line(z: ZooStatus) -> str:
    """One line per zoo: populations by state, models trained / diverged, ETA."""
    parts = [f"{z.count('trained')}/{len(z.populations)} populations trained"]
    parts += [f"{z.count(s)} {s}" for s in ("training", "waiting", "failed") if z.count(s)]
    eta = "done" if z.finished and not z.count("failed") else f"ETA ≈ {clock(z.eta_s)}"
    return (f"{z.zoo}: {', '.join(parts)} · {z.models_trained}/{z.models} models trained, "
            f"{z.diverged} diverged · {eta}")


def population_line(p: PopulationStatus) -> str:
    epochs = f"{p.epoch if p.epoch is not None else '?'}/{p.epochs} epochs"
    div = f"{p.diverged} diverged" if p.diverged is not None else "? diverged"
    line = f"  {p.population:<18} {p.state:<9} {epochs:<13} {p.models} models, {div}"
    if p.state == "training":
        line += f"  ETA {clock(p.eta_s)}"
    if p.updated_s_ago is not None and p.state != "trained":
        stale = p.updated_s_ago > 300
        line += f"  ({'no update for' if stale else 'updated'} {clock(p.updated_s_ago)}{' ago' if not stale else ''})"
    if p.note:
        line += f"  {p.note}"
    return line


def render(statuses: Iterable[ZooStatus], show_all: bool = False) -> list[str]:
    lines = []
    for z in statuses:
        lines.append(summary_line(z))
        lines += [population_line(p) for p in z.populations if show_all or p.state in ("training", "failed")]
    return lines


def watch(data: str | Path = "data", zoos: Sequence[str] | None = None, interval: float | None = None,
          show_all: bool = False, stream: TextIO | None = None, max_rounds: int | None = None) -> None:
    """Print the status once, or every ``interval`` seconds until every population is trained or failed.

    On a terminal the block is redrawn in place (ANSI: cursor up, clear to end); otherwise
    (a log file, a pipe, CI) the zoo summary lines are printed again whenever they change,
    so a redirected ``zoo status --watch`` gives periodic plain lines.
    """
    stream = stream or sys.stdout
    tty = is_tty(stream)
    shown, last, rounds = 0, None, 0
    while True:
        statuses = zoo_status(data, zoos)
        if interval is None or tty:
            lines = render(statuses, show_all)
            if tty and shown:
                stream.write(f"\x1b[{shown}F\x1b[J")
            stream.write("\n".join(lines) + "\n")
            shown = len(lines)
        else:
            lines = [f"{time.strftime('%H:%M:%S')} {summary_line(z)}" for z in statuses]
            key = [summary_line(z) for z in statuses]
            if key != last:
                stream.write("\n".join(lines) + "\n")
                last = key
        stream.flush()
        rounds += 1
        if interval is None or all(z.finished for z in statuses) or (max_rounds and rounds >= max_rounds):
            return
        time.sleep(interval)
