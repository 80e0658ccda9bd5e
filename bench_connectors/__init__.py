"""Connector benchmarks B3 (Lightspeed incremental), B5 (Tiendanube rate limit), B6 (MuleSoft non-blocking
customer list) and B7 (trigger endpoint + trigger-to-first-line). Run with ``python -m bench_connectors``.

Kept apart from ``bench/`` (B1/B2/B4/B8 and the reference script) so both can land without conflicts."""
