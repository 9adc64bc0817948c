"""The CLI on the real router model, the real encoder and the real score tables, with no
service: router train/eval/calibrate/probe, index build/search, bench retrieval and the
README's offline commands. CPU-heavy and without timing assertions, this folder runs in a
pytest process of its own beside the rest of the tier (``make test-integration``), which
spends most of its time waiting on services (fault windows, rollouts, a Redis outage)."""
