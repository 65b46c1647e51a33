"""Cross-cutting pieces of meterline: settings, the CLI and the local stack launcher."""
