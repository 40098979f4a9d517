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

The structural walk also checks required bindings to enumerable value sets
(:mod:`profiles.required`) when the validator has a binding table — :func:`default_validator`
does — since those are one set lookup each; the profile engine's binding check says the same
thing in the same words, and an issue it repeats is reported once.

Stages share the compiled tables of the validator they extend, so adding one costs nothing at
start-up, and a validator without stages does not even collect the sites.

Profile validation (:class:`profiles.engine.ProfileEngine`: claimed and explicit profiles, core
invariants, bindings, extensions, references, Bundle and QuestionnaireResponse rules) is not a
per-site stage: it needs every resource of the payload at once (a contained resource's
container for ``#id`` references and ``%rootResource``, the Bundle's entries for ``fullUrl``
resolution), so a validator given an ``engine`` runs it over the whole resource right after the
structural walk and before the stages::

    validator = Validator(engine=ProfileEngine(registry))
    validator.validate(resource, profiles=["http://example.org/StructureDefinition/x"])
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Sequence
from functools import cache
from typing import TYPE_CHECKING, Any

from profiles.issues import FATAL, STRUCTURE, ValidationIssue
from profiles.model import TypeModel, core_model
from profiles.required import RequiredBindings, default_required_bindings
from profiles.structure import ResourceSite, Structure

if TYPE_CHECKING:
    from profiles.engine import ProfileEngine

__all__ = ["ResourceSite", "Stage", "ValidationIssue", "Validator", "default_validator"]

Stage = Callable[[ResourceSite], Iterable[ValidationIssue]]
"""A validation step run on each resource the structural walk found (profile, invariant, terminology)."""


class Validator:
    """Validates FHIR R4 resources (parsed JSON) against a type model plus optional later stages."""

    def __init__(self, model: TypeModel | None = None, *, stages: Iterable[Stage] = (),
                 engine: ProfileEngine | None = None, bindings: RequiredBindings | None = None) -> None:
        self._structure = Structure(model if model is not None else core_model())
        self._stages: tuple[Stage, ...] = tuple(stages)
        self._engine = engine
        self._bindings = bindings

    @property
    def model(self) -> TypeModel:
        return self._structure.model

    @property
    def engine(self) -> ProfileEngine | None:
        """The profile engine run after the structural walk, if any."""
        return self._engine

    def with_engine(self, engine: ProfileEngine | None) -> Validator:
        """A validator that also validates against profiles with ``engine``, sharing the compiled structure."""
        extended = copy.copy(self)
        extended._engine = engine
        return extended

    @property
    def bindings(self) -> RequiredBindings | None:
        """The required-binding table the structural walk checks with, if any."""
        return self._bindings

    def with_bindings(self, bindings: RequiredBindings | None) -> Validator:
        """A validator whose structural walk checks required bindings with ``bindings`` (None: not at all)."""
        extended = copy.copy(self)
        extended._bindings = bindings
        return extended

    @property
    def stages(self) -> tuple[Stage, ...]:
        return self._stages

    def with_stages(self, *stages: Stage) -> Validator:
        """A validator that also runs ``stages`` (after this one's), sharing the compiled structure."""
        extended = copy.copy(self)
        extended._stages = self._stages + stages
        return extended

    def validate(self, resource: dict[str, Any], *, profiles: Sequence[str] = ()) -> list[ValidationIssue]:
        """All issues found in ``resource``, structural ones first; an empty list means valid.

        ``profiles`` are canonical urls the resource must conform to besides those it claims in
        ``meta.profile``; they need a validator with a profile engine.

        Never raises for bad content: anything that is not a resource (a list, a string, an
        unknown ``resourceType``) is reported as a ``fatal`` issue.
        """
        if profiles and self._engine is None:
            raise ValueError("validating against profiles needs a Validator with a ProfileEngine")
        issues: list[ValidationIssue] = []
        sites: list[ResourceSite] | None = [] if self._stages else None
        if self._bindings is not None:
            self._bindings.refresh()
        try:
            self._structure.walk(resource, issues, sites, self._bindings)
            if self._engine is not None and not any(i.severity == FATAL for i in issues):
                found = set(issues)  # a required binding both the walk and the engine checked: report it once
                issues.extend(i for i in self._engine.validate(resource, profiles=profiles) if i not in found)
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
    """The process-wide structural validator for the R4 core definitions (built once, tables lazily),
    with the required bindings of the shipped terminology."""
    return Validator(core_model(), bindings=default_required_bindings())


@cache
def full_validator() -> Validator:
    """The process-wide validator with core invariants, bindings and claimed profiles (core registry only).

    A server that accepts uploaded profiles builds its own ``Validator(engine=ProfileEngine(registry))``
    around the registry it keeps up to date.
    """
    from profiles.engine import ProfileEngine

    return default_validator().with_engine(ProfileEngine())
