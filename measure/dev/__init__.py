"""What only a developer runs: the Measurement API sandbox, the dev stack (`make run`), the Pub/Sub
emulator helpers and the Eventarc-like push relay. Never deployed (terraform/modules/measure/source.tf)."""
