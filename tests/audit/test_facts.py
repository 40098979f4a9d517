"""The facts of a request, spooled on its path, build later exactly the AuditEvent the request's
Access would build now (so moving the building off the request's path changes no event); a request
whose event needs more of its response than the patients (batch, transaction, the look-up's
matches, a failed authentication) is not reduced to facts."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from server.access.principal import Principal
from server.audit.events import facts, from_facts, rest_event
from server.fhir.json import dumps
from server.hooks import Access

BASE = "http://example.org/fhir"
CLINICIAN = Principal(kind="user", subject="dr-li", client_id="emr", role="institution", scopes=("user/*.rs",),
                      institution="12440000455858436X", purpose="TREAT")
SYSTEM = Principal(kind="client", subject="lab-system", client_id="lab-system", role="platform", institution="P1",
                   scopes=("system/*.rs",))
OBSERVATION = dumps({"resourceType": "Observation", "id": "o1", "status": "final",
                     "code": {"text": "x"}, "subject": {"reference": "Patient/p1"}})
SEARCHSET = {"resourceType": "Bundle", "type": "searchset",
             "entry": [{"resource": {"resourceType": "Observation", "id": "o2",
                                     "subject": {"reference": "Patient/p2"}}},
                       {"resource": {"resourceType": "Patient", "id": "p3"}}]}

ACCESSES: list[tuple[str, Access]] = [
    ("read, stored body", Access("read", "GET", "/Observation/o1", "Observation", "o1", "emr", 200, CLINICIAN, "",
                                 "10.1.2.3", None, OBSERVATION, "Observation/o1/_history/3")),
    ("search, page of resources", Access("search-type", "GET", "/Observation", "Observation", None, "lab-system", 200,
                                         SYSTEM, "subject=Patient/p2&_count=5", "10.1.2.4", None, SEARCHSET)),
    ("create", Access("create", "POST", "/Patient", "Patient", None, "emr", 201, CLINICIAN, "", "10.1.2.3", None,
                      {"resourceType": "Patient", "id": "p9"}, "Patient/p9/_history/1")),
    ("refused", Access("read", "GET", "/Patient/p1", "Patient", "p1", "emr", 403, CLINICIAN, "", "10.1.2.3",
                       "denied by Consent/c1", None)),
    ("operation with a query", Access("operation", "GET", "/Patient/p1/$everything", "Patient", "p1", "emr", 200,
                                      CLINICIAN, "_count=10", None, None, None)),
    ("open server, no principal", Access("history-type", "GET", "/Patient/_history", "Patient", None, None, 200, None,
                                         "", "127.0.0.1", None, None)),
]


@pytest.mark.parametrize("name, access", ACCESSES, ids=[a[0] for a in ACCESSES])
def test_facts_build_the_same_event(name: str, access: Access) -> None:
    now = rest_event(access, event_id="e1", recorded=1_767_225_600_123_456, base=BASE)
    record = facts(access, event_id="e1", recorded=1_767_225_600_123_456)
    assert record is not None
    spooled = orjson.loads(orjson.dumps(record))  # as written to and read back from the spool
    later = from_facts(spooled, BASE)
    assert orjson.dumps(later, option=orjson.OPT_SORT_KEYS) == orjson.dumps(now, option=orjson.OPT_SORT_KEYS)


@pytest.mark.parametrize("access", [
    Access("transaction", "POST", "/", None, None, "emr", 200, CLINICIAN, "", None, None,
           {"resourceType": "Bundle", "type": "transaction-response", "entry": []}),
    Access("operation", "POST", "/Patient/$cross-lookup", "Patient", None, "emr", 200, CLINICIAN, "", None, None,
           {"resourceType": "Bundle", "type": "searchset", "entry": []}),
    Access("read", "GET", "/Patient/p1", "Patient", "p1", None, 401, None, "", "10.0.0.1", "no token", None),
])
def test_events_that_need_their_response_are_built_at_once(access: Access) -> None:
    assert facts(access, event_id="e2", recorded=1) is None


def test_a_facts_record_is_far_smaller_than_its_event() -> None:
    access: Any = ACCESSES[0][1]
    record = orjson.dumps(facts(access, event_id="e1", recorded=1_767_225_600_123_456))
    event = orjson.dumps(rest_event(access, event_id="e1", recorded=1_767_225_600_123_456, base=BASE))
    assert len(record) * 3 < len(event)
