"""Plain Python that both the engine (sync/) and the connectors use: clock, redaction, the outbound HTTP
guard, crypto, the error families and the paging shapes. It imports neither sync nor connectors."""
