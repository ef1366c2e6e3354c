"""The pipelines a repository holds (``mlops.pipelines`` in invoke.yaml) and which one a
command acts on (``--pipeline``).

A pipeline is a module with a ``get_pipeline(**kwargs)`` function, the convention of
AWS's SageMaker project templates (``run_pipeline.py --module-name ... --kwargs``). Each
entry names its source (``package.module:function`` or ``path/to/file.py:function``,
relative to the repository root), its default input data and the parameter defaults of its
dataset. The project's own regression pipeline (``pipelines.definition.builder``) is the
one source that is not a template module: its dataset settings (target, features, bias
facet, thresholds) become its definition's parameter defaults.

``--pipeline`` takes a listed name, or a source not yet listed; such a pipeline gets a key
derived from its file or module name, and names of its own in the stack.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pipelines.core.errors import MlopsError

# The project's own pipeline (preprocess → checks → train → evaluate → gates → register).
PROJECT_PIPELINE = "pipelines.definition.builder:get_pipeline"
# A key is part of resource names (<prefix>-<env>-<key>-models): short, lower-case.
_KEY = re.compile(r"^[a-z][a-z0-9-]{0,14}[a-z0-9]$")
_MODULE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_FUNCTION = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# The dataset block's friendly names for the project pipeline's parameters.
DATASET_PARAMETERS = {
    "target": "TargetColumn",
    "features": "FeatureColumns",
    "bias_facet": "BiasFacetColumn",
    "bias_facet_threshold": "BiasFacetThreshold",
    "bias_label_threshold": "BiasLabelThreshold",
    "min_test_r2": "MinTestR2",
}
_ENTRY_KEYS = frozenset(
    {"source", "data", "data_parameter", "dataset", "parameters", "kwargs"}
    | {"monitored_features", "description"}
)


@dataclass(frozen=True)
class Source:
    """Where ``get_pipeline`` lives: a module path or a file, and the function's name."""

    module: str | None
    file: Path | None
    function: str

    @property
    def text(self) -> str:
        where = self.module if self.module is not None else str(self.file)
        return f"{where}:{self.function}"

    @property
    def stem(self) -> str:
        """The module's or file's last name, e.g. ``pipeline`` or ``abalone``."""
        if self.file is not None:
            return self.file.stem
        return str(self.module).rsplit(".", 1)[-1]


@dataclass(frozen=True)
class PipelineEntry:
    """One pipeline of the repository."""

    key: str
    source: Source
    data: str | None = None  # a local file (relative to the root) or an s3:// URI
    data_parameter: str = "InputDataUrl"  # the definition parameter the staged input fills
    parameters: Mapping[str, Any] = field(default_factory=dict)  # parameter defaults
    kwargs: Mapping[str, Any] = field(default_factory=dict)  # more get_pipeline kwargs
    monitored_features: tuple[str, ...] | None = None
    description: str = ""
    listed: bool = True  # False: named on the command line, not in invoke.yaml

    @property
    def is_project_pipeline(self) -> bool:
        return self.source.text == PROJECT_PIPELINE


def parse_source(text: str, root: Path) -> Source:
    """``package.module:function`` or ``path/file.py:function`` (relative to ``root``)."""
    where, sep, function = str(text).strip().rpartition(":")
    if not sep or not where or not _FUNCTION.match(function):
        raise MlopsError(
            f"A pipeline source looks like package.module:get_pipeline or "
            f"path/to/file.py:get_pipeline; got {text!r}."
        )
    if where.endswith(".py"):
        path = Path(where)
        path = path if path.is_absolute() else root / path
        if not path.is_file():
            raise MlopsError(f"Pipeline file {where} does not exist (looked at {path}).")
        return Source(None, path.resolve(), function)
    if not _MODULE.match(where):
        raise MlopsError(
            f"{where!r} is neither a Python file (.py) nor a module path (package.module)."
        )
    return Source(where, None, function)


def _same_file(listed: Source, given: Source) -> bool:
    """A listed module named by its file (``pipelines/abalone/pipeline.py:get_pipeline``)."""
    if listed.module is None or given.file is None or listed.function != given.function:
        return False
    try:
        spec = importlib.util.find_spec(listed.module)
    except (ImportError, ValueError):
        return False
    return bool(spec and spec.origin and Path(spec.origin).resolve() == given.file)


def check_key(key: str, where: str) -> str:
    if not _KEY.match(key) or "--" in key:
        raise MlopsError(
            f"{where}: pipeline name {key!r} must be 2-16 lower-case letters, digits and "
            "single hyphens, starting with a letter (it is part of resource names)."
        )
    return key


def derived_key(source: Source) -> str:
    """The key of a pipeline named by its source only: its file or module name."""
    key = re.sub(r"[^a-z0-9]+", "-", source.stem.lower()).strip("-")
    if key in ("pipeline", "pipelines") and source.file is not None:
        # AWS's templates call every module pipeline.py: the folder names it.
        key = re.sub(r"[^a-z0-9]+", "-", source.file.parent.name.lower()).strip("-")
    key = key[:16].strip("-")
    if not key or not key[0].isalpha():
        key = f"p-{key}"[:16].strip("-")
    return key if len(key) > 1 else f"{key}x"


def _entry(key: str, raw: Any, root: Path) -> PipelineEntry:
    where = f"mlops.pipelines.{key}"
    check_key(key, "mlops.pipelines")
    if not isinstance(raw, Mapping):
        raise MlopsError(f"{where} must be a mapping with at least a source.")
    unknown = sorted(set(raw) - _ENTRY_KEYS)
    if unknown:
        raise MlopsError(
            f"{where}: unknown setting(s) {', '.join(unknown)}; known: "
            + ", ".join(sorted(_ENTRY_KEYS))
            + "."
        )
    if not raw.get("source"):
        raise MlopsError(
            f"{where}.source is missing (package.module:function or file.py:function)."
        )
    source = parse_source(str(raw["source"]), root)
    parameters = dict(_mapping(raw.get("parameters"), f"{where}.parameters"))
    dataset = _mapping(raw.get("dataset"), f"{where}.dataset")
    if dataset and source.text != PROJECT_PIPELINE:
        raise MlopsError(
            f"{where}.dataset applies to the project pipeline ({PROJECT_PIPELINE}); give a "
            "template pipeline's defaults as parameters: {Name: value} or kwargs."
        )
    for name, value in dataset.items():
        if name not in DATASET_PARAMETERS:
            raise MlopsError(
                f"{where}.dataset.{name} is not a dataset setting; known: "
                + ", ".join(DATASET_PARAMETERS)
                + "."
            )
        if name == "features" and isinstance(value, list | tuple):
            value = ",".join(str(item) for item in value)
        parameters.setdefault(DATASET_PARAMETERS[name], value)
    # Whether a local data file exists is checked when a run needs it (check_entry_data):
    # commands that read the settings without running (a git hook) must not depend on it.
    data = raw.get("data")
    features = raw.get("monitored_features")
    if features is not None and (
        not isinstance(features, list | tuple) or not all(isinstance(f, str) for f in features)
    ):
        raise MlopsError(f"{where}.monitored_features must be a list of column names.")
    return PipelineEntry(
        key=key,
        source=source,
        data=str(data) if data is not None else None,
        data_parameter=str(raw.get("data_parameter") or "InputDataUrl"),
        parameters=parameters,
        kwargs=dict(_mapping(raw.get("kwargs"), f"{where}.kwargs")),
        monitored_features=tuple(features) if features is not None else None,
        description=str(raw.get("description") or ""),
    )


def check_entry_data(entry: PipelineEntry, root: Path) -> None:
    """Before a run's slow work: the entry's local data file exists."""
    if entry.data is None or entry.data.startswith("s3://"):
        return
    path = Path(entry.data)
    if not (path if path.is_absolute() else root / path).is_file():
        raise MlopsError(f"mlops.pipelines.{entry.key}.data: file {entry.data} does not exist.")


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise MlopsError(f"{where} must be a mapping.")
    return value


@dataclass(frozen=True)
class PipelineCatalog:
    """The listed pipelines, in invoke.yaml's order, and the default one."""

    entries: tuple[PipelineEntry, ...]
    default: str  # the key commands act on: mlops.default_pipeline, or --pipeline's
    # A pipeline --pipeline named by its source only (not listed): it has no Terraform.
    unlisted: PipelineEntry | None = None
    # Whether --pipeline chose: then listings show that pipeline's executions only.
    selected: bool = False

    @classmethod
    def load(
        cls, config: Mapping[str, Any] | None, default: str | None, root: Path
    ) -> PipelineCatalog:
        raw = config or {"main": {"source": PROJECT_PIPELINE}}
        if not isinstance(raw, Mapping):
            raise MlopsError("mlops.pipelines must map pipeline names to their settings.")
        entries = tuple(_entry(str(key), value, root) for key, value in raw.items())
        chosen = default or entries[0].key
        if chosen not in {e.key for e in entries}:
            raise MlopsError(
                f"mlops.default_pipeline {chosen!r} is not in mlops.pipelines ("
                + ", ".join(e.key for e in entries)
                + ")."
            )
        return cls(entries, chosen)

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(e.key for e in self.entries)

    def get(self, key: str) -> PipelineEntry | None:
        if self.unlisted is not None and self.unlisted.key == key:
            return self.unlisted
        return next((e for e in self.entries if e.key == key), None)

    @property
    def position(self) -> int:
        """The chosen pipeline's place: listed ones in order, an unlisted one after them
        (locally each pipeline's endpoints listen on ports of their own, by place)."""
        keys = self.keys
        return keys.index(self.default) if self.default in keys else len(keys)

    @property
    def chosen(self) -> PipelineEntry:
        return self.get(self.default)  # type: ignore[return-value]

    def selecting(self, name: str | None, root: Path) -> PipelineCatalog:
        """The catalog with ``--pipeline name`` as the pipeline commands act on."""
        if not name:
            return self
        entry = self.choose(name, root)
        unlisted = None if entry.listed else entry
        if unlisted is not None and any(e.key == entry.key for e in self.entries):
            raise MlopsError(
                f"{name} would take the name {entry.key!r}, which mlops.pipelines already "
                f"gives {self.get(entry.key).source.text}; list it under a name of its own."  # type: ignore[union-attr]
            )
        return replace(self, default=entry.key, unlisted=unlisted, selected=True)

    def choose(self, name: str | None, root: Path) -> PipelineEntry:
        """``--pipeline``: a listed name, a source (listed or not), or the default."""
        if not name:
            return self.get(self.default)  # type: ignore[return-value]
        listed = self.get(name)
        if listed is not None:
            return listed
        if ":" not in name:
            raise MlopsError(
                f"Unknown pipeline {name!r}: the repository lists "
                + ", ".join(self.keys)
                + " (mlops.pipelines in invoke.yaml); or give a module as "
                "path/to/file.py:get_pipeline or package.module:get_pipeline."
            )
        source = parse_source(name, root)
        for entry in self.entries:
            if entry.source == source or _same_file(entry.source, source):
                return entry
        return PipelineEntry(key=derived_key(source), source=source, listed=False)

    def to_document(self) -> dict[str, Any]:
        """JSON for a process that outlives the command (a monitoring schedule)."""

        def entry(e: PipelineEntry) -> dict[str, Any]:
            return {
                "key": e.key,
                "source": e.source.text,
                "data": e.data,
                "data_parameter": e.data_parameter,
                "parameters": dict(e.parameters),
                "kwargs": dict(e.kwargs),
                "monitored_features": e.monitored_features,
                "description": e.description,
                "listed": e.listed,
            }

        return {
            "entries": [entry(e) for e in self.entries],
            "default": self.default,
            "unlisted": entry(self.unlisted) if self.unlisted else None,
            "selected": self.selected,
        }

    @classmethod
    def from_document(cls, document: Mapping[str, Any], root: Path) -> PipelineCatalog:
        def entry(raw: Mapping[str, Any]) -> PipelineEntry:
            features = raw.get("monitored_features")
            return PipelineEntry(
                **{
                    **raw,
                    "source": parse_source(raw["source"], root),
                    "monitored_features": tuple(features) if features is not None else None,
                }
            )

        unlisted = document.get("unlisted")
        return cls(
            tuple(entry(raw) for raw in document["entries"]),
            document["default"],
            entry(unlisted) if unlisted else None,
            bool(document.get("selected")),
        )

    def terraform_pipelines(self) -> list[dict[str, Any]]:
        """Terraform's ``pipelines`` variable: every listed pipeline, in order (the first
        keeps the environment's own resource names)."""
        found = []
        for entry in self.entries:
            item: dict[str, Any] = {"key": entry.key}
            if entry.monitored_features is not None:
                item["monitored_features"] = list(entry.monitored_features)
            found.append(item)
        return found
