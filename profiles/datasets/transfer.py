"""A resident who moved district (档案迁移): two 健康档案编号 for one person, and the old programme enrolment.

Each district's health-record system numbers its residents' records (城乡居民健康档案编号, system
``urn:oid:2.16.156.10011.1.2``), so a resident who moved has two numbers. Like a record transfer, the person
keeps one current number and the other as ``use: old``: :func:`settle` makes the number with the latest
建档日期 (``Identifier.period.start``) current, and without dates the one seen last (the later record in the file,
or the later ingest); the older gets ``use: old`` and ``period.end`` = the current one's start. The Patient's
managingOrganization is the latest record's institution (the new district). :func:`close_moved_episodes` ends
the old district's EpisodeOfCare of the same programme (status ``finished``, ``period.end``) when the new
district's enrolment arrives.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date
from typing import Any

RECORD_NO = "urn:oid:2.16.156.10011.1.2"


def settle(identifiers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``identifiers`` with one current 健康档案编号 and the others ``use: old`` (see the module docstring)."""
    numbers = [(n, i) for n, i in enumerate(identifiers) if i.get("system") == RECORD_NO and i.get("value")]
    if len(numbers) < 2:
        return identifiers
    current_at, current = max(numbers, key=lambda item: ((item[1].get("period") or {}).get("start") or "", item[0]))
    since = (current.get("period") or {}).get("start")
    out = []
    for n, identifier in enumerate(identifiers):
        if identifier.get("system") == RECORD_NO and identifier.get("value") and n != current_at:
            identifier = {**identifier, "use": "old"}
            start = (identifier.get("period") or {}).get("start")
            if since and (start is None or start <= since):
                identifier["period"] = {**(identifier.get("period") or {}), "end": since}
        elif n == current_at and identifier.get("use") == "old":
            identifier = {k: v for k, v in identifier.items() if k != "use"}
        out.append(identifier)
    return out


Search = Callable[[str, str], Awaitable["list[dict[str, Any]]"]]


def _patient_criteria(bundle: dict[str, Any], reference: str) -> str | None:
    for entry in bundle["entry"]:
        if entry["fullUrl"] == reference and entry["resource"]["resourceType"] == "Patient":
            request = entry["request"]
            criteria = request.get("ifNoneExist") or request["url"].partition("?")[2]
            if criteria.startswith("identifier=") and "&" not in criteria:
                return "patient." + criteria
    return None


async def close_moved_episodes(bundle: dict[str, Any], search: Search) -> dict[str, Any]:
    """``bundle`` with the person's stored active EpisodeOfCare of the same programme and another identifier
    (another district's enrolment) closed: ``status: finished``, ``period.end`` the new enrolment's first visit
    (or today), never before the old one's start."""
    added = []
    for entry in bundle["entry"]:
        episode = entry["resource"]
        if episode["resourceType"] != "EpisodeOfCare" or not episode.get("type"):
            continue
        criteria = _patient_criteria(bundle, (episode.get("patient") or {}).get("reference", ""))
        coding = (episode["type"][0].get("coding") or [{}])[0]
        if criteria is None or not coding.get("code"):
            continue
        mine = {i.get("value") for i in episode.get("identifier") or ()}
        visits = [e["resource"].get("period", {}).get("start") for e in bundle["entry"]
                  if e["resource"]["resourceType"] == "Encounter"]
        end = min((v for v in visits if v), default=date.today().isoformat())
        stored = await search("EpisodeOfCare", f"{criteria}&status=active&type={coding['system']}|{coding['code']}")
        for old in stored:
            if {i.get("value") for i in old.get("identifier") or ()} & mine:
                continue
            start = (old.get("period") or {}).get("start")
            closed = {**old, "status": "finished",
                      "period": {**(old.get("period") or {}), "end": max(end, start) if start else end}}
            added.append({"fullUrl": f"EpisodeOfCare/{old['id']}", "resource": closed,
                          "request": {"method": "PUT", "url": f"EpisodeOfCare/{old['id']}",
                                      **({"ifMatch": f'W/"{old["meta"]["versionId"]}"'}
                                         if (old.get("meta") or {}).get("versionId") else {})}})
    return {**bundle, "entry": [*bundle["entry"], *added]} if added else bundle
