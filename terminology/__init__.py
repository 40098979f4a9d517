"""Terminology: CodeSystems, ValueSets, ConceptMaps and their operations (the profiles and
terminology issue builds this package; the server does not claim terminology operations yet)."""
