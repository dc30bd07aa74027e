"""Safe, bounded YAML reading for zoo specs.

``yaml.safe_load`` is safe against code execution but not against a hostile or mistaken
spec: an alias bomb ("billion laughs") is a few hundred bytes that expand to gigabytes as
soon as anything walks the result; a duplicate key silently keeps the last value; YAML 1.1
reads ``1e-3`` (no dot) as a *string*. :class:`SpecLoader` fixes all three:

- anchors (``&name``) and aliases (``*name``) are refused outright (a zoo spec never needs
  them: write the values out), so no document can grow while it is read;
- a key that appears twice in one mapping is an error naming the key and both lines;
- YAML 1.2 floats (``1e-3``, ``1E+5``, ``5.0e4``) resolve to floats;
- nesting deeper than :data:`MAX_DEPTH` and files larger than :data:`MAX_BYTES` are
  refused before they are parsed, so reading any file takes bounded time and memory.

Every problem is a one-line :class:`~zoo.errors.SpecError` naming the file, the line and the fix.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from zoo.errors import SpecError

#: Largest config file read (bytes). Zoo specs are a few kB; the pure-Python parser needs
#: about 5 s per MB (2 cores under load), so this bounds any file to about a second.
MAX_BYTES = 256 << 10
#: Deepest nesting of mappings/sequences (a zoo spec needs about 6).
MAX_DEPTH = 32

#: YAML 1.2 core-schema floats that YAML 1.1 misses: an exponent without a dot or sign
#: (``1e-3``, ``1E5``) and ``1.e5``-style mantissas. 1.1's own float forms still resolve first.
_FLOAT_12 = re.compile(r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)$")


def _where(mark: Any) -> str:
    return f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "(unknown position)"


class SpecLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` without anchors/aliases or duplicate keys, with YAML 1.2 floats.

    ``source`` (set by :func:`load_yaml_text`) names the file in error messages.
    """

    source = "config"

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        """Refuse aliases, anchors and deep nesting before a node is built."""
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            raise SpecError(
                f"{self.source}: {_where(event.start_mark)}: YAML alias '*{event.anchor}' is not allowed in zoo "
                "specs (aliases can expand a small file into gigabytes); write the value out instead"
            )
        anchor = getattr(event, "anchor", None)
        if anchor is not None:
            raise SpecError(
                f"{self.source}: {_where(event.start_mark)}: YAML anchor '&{anchor}' is not allowed in zoo "
                "specs (anchors and aliases are refused); write the value out instead"
            )
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise SpecError(
                    f"{self.source}: {_where(event.start_mark)}: nested more than {MAX_DEPTH} levels deep; "
                    "a zoo spec needs far fewer, flatten it"
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: Any, deep: bool = False) -> dict[Any, Any]:
        """Like SafeLoader's, but a key given twice is an error (PyYAML silently keeps the last)."""
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, Any] = {}
            for key_node, _value in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":  # '<<' merges are flattened by the parent
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.get(key)
                except TypeError:  # an unhashable key: SafeConstructor reports it below
                    continue
                if first is not None:
                    raise SpecError(
                        f"{self.source}: {_where(key_node.start_mark)}: duplicate key {key!r} (first at "
                        f"{_where(first)}); YAML keeps only the last one, so remove or rename one of them"
                    )
                seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


# Copy the resolver table so adding one does not change yaml.SafeLoader for everyone else.
SpecLoader.yaml_implicit_resolvers = {k: list(v) for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
SpecLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_12, list("-+0123456789."))


def load_yaml_text(text: str, source: str = "config") -> Any:
    """Parse one YAML document with :class:`SpecLoader`; errors name ``source`` and the line."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        raise SpecError(f"{source}: larger than {MAX_BYTES // 1024} KiB; a zoo spec is a few kB, "
                        "describe large grids with logspace/linspace or seeds: N instead of long lists")
    loader = SpecLoader(text)
    loader.source = source
    try:
        return loader.get_single_data()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" {_where(mark)}:" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SpecError(f"{source}:{where} malformed YAML ({problem}); fix the syntax") from None
    except RecursionError:
        raise SpecError(f"{source}: nested too deeply to read; flatten it") from None
    finally:
        loader.dispose()


def load_yaml(path: str | Path) -> Any:
    """Read one YAML file with :class:`SpecLoader` (bounded size, no aliases, no duplicate keys)."""
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"{path}: no such config file; pass an existing YAML file (e.g. config/config.yaml)")
    size = path.stat().st_size
    if size > MAX_BYTES:
        raise SpecError(f"{path}: {size / 2**20:.1f} MiB is larger than the {MAX_BYTES // 1024} KiB a zoo spec may be; "
                        "describe large grids with logspace/linspace or seeds: N instead of long lists")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(f"{path}: not UTF-8 text (byte {exc.start}); save the spec as UTF-8") from None
    except OSError as exc:
        raise SpecError(f"{path}: cannot read ({exc.strerror}); check the path and permissions") from None
    return load_yaml_text(text, str(path))


__all__ = ["MAX_BYTES", "MAX_DEPTH", "SpecLoader", "load_yaml", "load_yaml_text"]
