"""Resource validation as a pipeline of stages, structure first.

The server calls :meth:`Validator.validate` on every write and turns the returned
:class:`ValidationIssue` list into an OperationOutcome
(http://hl7.org/fhir/R4/validation.html). Validation is layered the way the specification layers
it: structure (the core StructureDefinitions, :mod:`profiles.structure`), then profiles,
invariants and terminology. The structural walk always runs first, because it is the one that
finds every resource in the payload (the top one, ``contained`` ones, Bundle entries, Parameters
resources) and knows their types; each later *stage* is a function that is given each of those
:class:`ResourceSite` in turn and returns the issues it finds there::

    def no_unknown_profiles(site: ResourceSite) -> list[ValidationIssue]: ...

    validator = default_validator().with_stages(no_unknown_profiles)

Stages share the compiled tables of the validator they extend, so adding one costs nothing at
start-up, and a validator without stages does not even collect the sites.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from functools import cache
from typing import Any

from profiles.issues import FATAL, STRUCTURE, ValidationIssue
from profiles.model import TypeModel, core_model
from profiles.structure import ResourceSite, Structure

__all__ = ["ResourceSite", "Stage", "ValidationIssue", "Validator", "default_validator"]

Stage = Callable[[ResourceSite], Iterable[ValidationIssue]]
"""A validation step run on each resource the structural walk found (profile, invariant, terminology)."""


class Validator:
    """Validates FHIR R4 resources (parsed JSON) against a type model plus optional later stages."""

    def __init__(self, model: TypeModel | None = None, *, stages: Iterable[Stage] = ()) -> None:
        self._structure = Structure(model if model is not None else core_model())
        self._stages: tuple[Stage, ...] = tuple(stages)

    @property
    def model(self) -> TypeModel:
        return self._structure.model

    @property
    def stages(self) -> tuple[Stage, ...]:
        return self._stages

    def with_stages(self, *stages: Stage) -> Validator:
        """A validator that also runs ``stages`` (after this one's), sharing the compiled structure."""
        extended = copy.copy(self)
        extended._stages = self._stages + stages
        return extended

    def validate(self, resource: dict[str, Any]) -> list[ValidationIssue]:
        """All issues found in ``resource``, structural ones first; an empty list means valid.

        Never raises for bad content: anything that is not a resource (a list, a string, an
        unknown ``resourceType``) is reported as a ``fatal`` issue.
        """
        issues: list[ValidationIssue] = []
        sites: list[ResourceSite] | None = [] if self._stages else None
        try:
            self._structure.walk(resource, issues, sites)
        except RecursionError:
            issues.append(ValidationIssue(FATAL, STRUCTURE, "the resource is nested too deeply to validate", ""))
            return issues
        if sites is None:
            return issues
        for stage in self._stages:
            for site in sites:
                issues.extend(stage(site))
        return issues


@cache
def default_validator() -> Validator:
    """The process-wide structural validator for the R4 core definitions (built once, tables lazily)."""
    return Validator(core_model())
