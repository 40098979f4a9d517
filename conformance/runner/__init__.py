"""The TestScript runner (http://hl7.org/fhir/R4/testscript.html): load a script in JSON or FHIR
XML, run it against any FHIR server through an ``httpx.AsyncClient`` (a real base URL, or an ASGI
app in-process), and get a :class:`ScriptResult` the reports render."""

from conformance.runner.engine import RunOptions as RunOptions
from conformance.runner.engine import run_script as run_script
from conformance.runner.results import ActionResult as ActionResult
from conformance.runner.results import Exchange as Exchange
from conformance.runner.results import Outcome as Outcome
from conformance.runner.results import ScriptResult as ScriptResult
from conformance.runner.results import TestResult as TestResult
from conformance.runner.script import LoadedScript as LoadedScript
from conformance.runner.script import ScriptError as ScriptError
from conformance.runner.script import load_script as load_script

__all__ = [
    "ActionResult", "Exchange", "LoadedScript", "Outcome", "RunOptions", "ScriptError", "ScriptResult",
    "TestResult", "load_script", "run_script",
]
