"""What the three services share: settings, logs, metrics, HTTP helpers and client factories, the
database (`db`), the billing domain (`domain`) and the usage state in Redis (`usage_state`); it
imports only `schemas` and libraries."""
