"""The scheduler: a pure state machine (core), its ready queue, and the in-process wrapper."""
