"""`dpone connectors new`: a working skeleton of a tap or a target, written into a dpone checkout.

Templates (templates/<kind>_<file>.tmpl) are rendered with string.Template; the docs page's settings
table and the meltano.yml entry are made from the rendered connector class itself, so they say what
the connector says in `--about`. Everything is checked before the first file is written.
"""

from dpone_runner.scaffold.generate import Written, new_connector

__all__ = ["Written", "new_connector"]
