"""Terminology: CodeSystems, ValueSets and ConceptMaps and the R4 operations on them
($lookup, $subsumes, $validate-code, $expand, $translate), over the R4 terminology and the
Chinese national code tables shipped in ``terminology/data``.

Importing this package is cheap: the data is opened on first use of :func:`default_terminology`.
"""

from terminology.errors import (
    InvalidCodeTable as InvalidCodeTable,
)
from terminology.errors import (
    InvalidRequest as InvalidRequest,
)
from terminology.errors import (
    NotSupported as NotSupported,
)
from terminology.errors import (
    TerminologyError as TerminologyError,
)
from terminology.errors import (
    TooCostly as TooCostly,
)
from terminology.errors import (
    UnknownCode as UnknownCode,
)
from terminology.errors import (
    UnknownResource as UnknownResource,
)
from terminology.errors import (
    UnknownSystem as UnknownSystem,
)
from terminology.membership import CodeCheck as CodeCheck
from terminology.service import Terminology as Terminology
from terminology.service import default_terminology as default_terminology

__all__ = [
    "CodeCheck",
    "InvalidCodeTable",
    "InvalidRequest",
    "NotSupported",
    "Terminology",
    "TerminologyError",
    "TooCostly",
    "UnknownCode",
    "UnknownResource",
    "UnknownSystem",
    "default_terminology",
]
