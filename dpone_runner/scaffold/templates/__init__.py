"""The files `dpone connectors new` renders (string.Template): data, not modules."""
