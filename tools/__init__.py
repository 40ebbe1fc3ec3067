"""The `pong` command line and its tools."""
