"""The HTTP surface: route table, content negotiation, headers, error mapping, metrics, logs."""
