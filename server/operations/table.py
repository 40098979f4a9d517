"""Every operation the server offers, in one reviewable list."""

from __future__ import annotations

from server.operations import bulk, cross_lookup, everything, ingest_local, recognition, reindex, terminology, validate
from server.operations import match as patient_match
from server.operations import merge as patient_merge
from server.operations.registry import Operation, OperationTable
from server.transfer import datareturn
from server.transfer import operations as transfer


def operation_table() -> OperationTable:
    return OperationTable([
        validate.OPERATION,
        *terminology.OPERATIONS_HTTP,
        everything.OPERATION,
        reindex.OPERATION,
        *ingest_local.OPERATIONS,
        patient_match.OPERATION,
        *patient_merge.OPERATIONS,
        cross_lookup.OPERATION,
        *recognition.OPERATIONS,
        *bulk.OPERATIONS,
        Operation("transfer", frozenset({"instance"}), transfer.run_transfer, frozenset({"Patient"}), True),
        Operation("transfer-history", frozenset({"instance"}), transfer.run_transfer_history, frozenset({"Patient"})),
        Operation("data-return", frozenset({"instance"}), datareturn.handler(bulk.export), frozenset({"Task"}), True),
    ])
