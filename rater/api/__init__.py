"""HTTP handlers of the Lago-compatible API, one module per resource."""
