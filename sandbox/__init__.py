"""Local AWS for runs and tests: moto's server on 127.0.0.1, seeded as the stack would."""
