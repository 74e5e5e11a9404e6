"""The data that flows between the stages, as validated pydantic models."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Mode = Literal["multi-label", "single-label"]


class Record(BaseModel):
    """One labelled (or unlabelled) entity name, remembering where it came from."""

    model_config = ConfigDict(frozen=True)

    text: str
    labels: tuple[str, ...] = ()
    source: str | None = None
    id: str | int | None = None  # as read: an integer id is written back as one
    metadata: dict[str, Any] = Field(default_factory=dict)
    # Where the record was read, so that later stages can name the file and row.
    file: str | None = None
    row: int | None = None


class Label(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1)
    name: str | None = None
    translations: dict[str, str] = Field(default_factory=dict)
    description: str = ""
    aliases: list[str] = Field(default_factory=list)
    # Not label names: words that mark a name as this label (brands, chains, place words),
    # for taggers that work from the taxonomy's words alone.
    keywords: list[str] = Field(default_factory=list)
    parent: str | None = None

    @property
    def display_name(self) -> str:
        return self.name or self.id


class Constraints(BaseModel):
    model_config = ConfigDict(extra="forbid")

    exclusive: list[str] = Field(
        default_factory=list, description="labels that never stand with another label"
    )
    exclusive_groups: list[list[str]] = Field(
        default_factory=list, description="groups of which an item has at most one label"
    )
    min_labels: int = Field(default=0, ge=0)
    max_labels: int | None = Field(default=None, ge=1)


class Taxonomy(BaseModel):
    """A label set as data; the only place label order and meaning come from."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    entity_type: str = "entity"
    version: str = "1"
    mode: Mode = "multi-label"
    description: str = ""
    labels: list[Label] = Field(min_length=1)
    constraints: Constraints = Field(default_factory=Constraints)
    # Labels nested through `parent`: a name labelled with a child is also labelled with
    # every ancestor, in training data, truth and predictions alike.
    implies_ancestors: bool = True

    @field_validator("version", mode="before")
    @classmethod
    def _version_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int | float) else value

    @model_validator(mode="after")
    def _check_references(self) -> Taxonomy:
        seen: dict[str, str] = {}
        for label in self.labels:
            for key in (label.id, *label.aliases):
                if key in seen:
                    raise ValueError(
                        f"'{key}' names both label '{seen[key]}' and label '{label.id}'"
                    )
                seen[key] = label.id
        ids = {label.id for label in self.labels}
        referenced = [
            *self.constraints.exclusive,
            *(name for group in self.constraints.exclusive_groups for name in group),
            *(label.parent for label in self.labels if label.parent),
        ]
        for name in referenced:
            if name not in ids:
                raise ValueError(f"constraint or parent refers to unknown label '{name}'")
        limits = self.constraints
        if limits.max_labels is not None and limits.min_labels > limits.max_labels:
            raise ValueError(
                f"min_labels ({limits.min_labels}) is above max_labels ({limits.max_labels})"
            )
        if limits.min_labels > len(self.labels):
            raise ValueError(
                f"min_labels ({limits.min_labels}) is above the number of labels ({len(self.labels)})"
            )
        self._check_hierarchy()
        return self

    def _check_hierarchy(self) -> None:
        parents = {label.id: label.parent for label in self.labels if label.parent}
        for start in parents:
            seen, current = {start}, parents.get(start)
            while current is not None:
                if current in seen:
                    raise ValueError(f"label '{start}' is its own ancestor (a parent cycle)")
                seen.add(current)
                current = parents.get(current)
        if not parents or not self.implies_ancestors:
            return
        if self.mode == "single-label":
            raise ValueError(
                "a single-label taxonomy cannot imply ancestors (a child and its parent are "
                "two labels); set implies_ancestors: false or mode: multi-label"
            )
        nested = set(parents) | set(parents.values())
        for name in self.constraints.exclusive:
            if name in nested:
                raise ValueError(
                    f"exclusive label '{name}' has a parent or a child: the implied ancestor "
                    "would stand beside it"
                )
        # Ancestors are added after the rule applied the constraints: a group member with
        # children, or a cap on labels, could be broken by them.
        has_children = set(parents.values())
        for group in self.constraints.exclusive_groups:
            for name in group:
                if name in has_children:
                    raise ValueError(
                        f"exclusive group label '{name}' has children: children of two "
                        "group labels would imply both; group the children instead"
                    )
        if self.constraints.max_labels is not None:
            raise ValueError(
                "max_labels with implied ancestors: the ancestors added to the labels chosen "
                "would pass it; set implies_ancestors: false or drop max_labels"
            )

    @property
    def label_ids(self) -> list[str]:
        return [label.id for label in self.labels]

    def label(self, label_id: str) -> Label:
        for label in self.labels:
            if label.id == label_id:
                return label
        raise KeyError(label_id)

    @property
    def hierarchical(self) -> bool:
        """Whether any label has a parent."""
        return any(label.parent for label in self.labels)

    def ancestors(self, label_id: str) -> list[str]:
        """The parent, its parent and so on up to a root."""
        parents = {label.id: label.parent for label in self.labels}
        out, current = [], parents.get(label_id)
        while current is not None:
            out.append(current)
            current = parents.get(current)
        return out

    def children(self, label_id: str | None) -> list[str]:
        """The labels whose parent is ``label_id`` (None: the roots), in taxonomy order."""
        return [label.id for label in self.labels if label.parent == label_id]

    def resolve(self, name: str) -> str | None:
        """The label id that ``name`` (an id or an alias) stands for, or None."""
        for label in self.labels:
            if name == label.id or name in label.aliases:
                return label.id
        return None


class Prediction(BaseModel):
    text: str
    labels: list[str]
    scores: dict[str, float]


class DataFile(BaseModel):
    """A fingerprint of a file a tagger was trained or validated on."""

    path: str
    sha256: str
    rows: int


class ComponentSpec(BaseModel):
    """A plugin-provided component (encoder or decision rule) and its parameters."""

    name: str
    params: dict[str, Any] = Field(default_factory=dict)
