"""Read a cluster config file safely: encodings, duplicate keys, alias expansion and size are bounded.

Why not ``yaml.safe_load`` alone: it accepts duplicate keys silently (ParallelCluster's own loader,
``pcluster.utils.yaml_no_duplicates_constructor``, rejects them), and a YAML alias bomb ("billion
laughs") builds a small graph that every later walk over the config expands without limit. Here
the composed node graph is measured before anything walks it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from hpctool.errors import ConfigError, UsageError

# A real ParallelCluster config is a few KB (the largest in the corpus is ~15 KB); 2 MiB leaves room
# for generated configs with thousands of tags while keeping every check well under a second.
MAX_BYTES = 2 * 1024 * 1024
# Scalars + containers after aliases are expanded; a 2 MiB config without aliases has far fewer.
MAX_EXPANDED_NODES = 200_000


class LoadError(ConfigError):
    """The file is not a YAML config hpctool will read; ``line`` is 1-based when known."""

    def __init__(self, message: str, hint: str, line: int | None = None) -> None:
        super().__init__(message, hint)
        self.line = line


# libyaml's parser where PyYAML was built with it (Debian's and the wheels are): 5-10x faster on large files.
_BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _NoDuplicatesLoader(_BaseLoader):  # type: ignore[valid-type, misc]
    """SafeLoader that rejects a key given twice in one mapping, as ParallelCluster does."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                hash(key)
            except TypeError:
                continue  # the base class reports unhashable keys itself
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping", node.start_mark,
                    f"duplicate key {key!r} (first on line {seen[key] + 1})", key_node.start_mark)
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


_NoDuplicatesLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
                                    _NoDuplicatesLoader.construct_mapping)


def _expanded_size(root: yaml.Node, limit: int) -> int:
    """Number of nodes once aliases are expanded, memoised per node so a bomb is measured in linear time."""
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in active:
            raise LoadError("the YAML refers to itself through an alias (a recursive anchor)",
                            "a cluster config is a tree: remove the alias that points at its own parent",
                            node.start_mark.line + 1)
        active.add(key)
        total = 1
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                total += size(key_node) + size(value_node)
                if total > limit:
                    break
        elif isinstance(node, yaml.SequenceNode):
            for item in node.value:
                total += size(item)
                if total > limit:
                    break
        active.discard(key)
        sizes[key] = total
        return total

    return size(root)


def parse_text(text: str, source: str = "config") -> Any:
    """Parse YAML text with the bounds above; raises LoadError with the line when known."""
    loader = None
    try:
        loader = _NoDuplicatesLoader(text)  # the reader checks the characters here already
        node = loader.get_single_node()
        if node is None:
            return None
        nodes = _expanded_size(node, MAX_EXPANDED_NODES)
        if nodes > MAX_EXPANDED_NODES:
            raise LoadError(f"{source}: the YAML expands to more than {MAX_EXPANDED_NODES:,} values through "
                            "aliases (&anchor / *alias)", "a cluster config has a few hundred values: write "
                            "the repeated parts out or remove the aliases", node.start_mark.line + 1)
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}:" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise LoadError(f"{source}:{where} not valid YAML: {problem}", "fix the YAML syntax",
                        mark.line + 1 if mark else None) from exc
    except RecursionError as exc:
        raise LoadError(f"{source}: the YAML is nested too deeply", "a cluster config is a few levels deep") from exc
    finally:
        if loader is not None:
            loader.dispose()


def decode(data: bytes, source: str) -> str:
    """UTF-8 (a BOM is allowed) or a clear error naming the offending byte; never a traceback."""
    if b"\x00" in data[:8192]:
        raise LoadError(f"{source}: this is a binary file, not a YAML config", "give the path of the cluster "
                        "config (a .yaml text file)")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise LoadError(f"{source}: not UTF-8 text (byte 0x{data[exc.start]:02x} at line {line})",
                        "ParallelCluster reads configs as UTF-8: re-save the file as UTF-8 (e.g. `iconv -f "
                        "latin1 -t utf-8`)", line) from exc


def load_config(path: str | Path) -> Any:
    """Read and parse the config at ``path``. A missing path or a directory is a UsageError (exit 2)."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_BYTES + 1)
    except IsADirectoryError as exc:
        raise UsageError(f"{path}: is a directory", "give the path of a ParallelCluster config file (YAML)") from exc
    except (FileNotFoundError, NotADirectoryError) as exc:
        raise UsageError(f"{path}: no such file", "give the path of a ParallelCluster config (YAML)") from exc
    except OSError as exc:
        raise UsageError(f"{path}: cannot read: {exc.strerror}", "check the path and its permissions") from exc
    if len(data) > MAX_BYTES:
        raise LoadError(f"{path}: larger than {MAX_BYTES // (1024 * 1024)} MiB", "a ParallelCluster config is a "
                        "few KB: is this the right file?")
    return parse_text(decode(data, str(path)), str(path))
