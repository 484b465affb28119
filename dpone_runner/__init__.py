"""The `dpone` command: runs a tap into one or more targets and keeps committed state."""
