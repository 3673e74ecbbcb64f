"""The wire: the only place that knows the contract's spellings (requests, responses, events, OpenAPI)."""
