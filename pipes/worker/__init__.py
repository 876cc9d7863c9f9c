"""The worker: walks the DAG, takes work from a scheduler, runs tasks and reports."""
