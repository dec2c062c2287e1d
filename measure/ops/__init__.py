"""What an operator runs against a deployment: `python -m measure` (dead letters, backfill, explain).
Never deployed (terraform/modules/measure/source.tf)."""
