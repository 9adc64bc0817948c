"""What the tests share: paths, the CLI runner, HTTP calls, waits, the fake-engine fleet
and an OTLP receiver. Test modules import from here, never from one another or from a
conftest."""
