"""A ClickHouse batch is the stream's RECORD lines, joined (targets/framework/line_batch.py): the
server parses them, Python decodes nothing. What ClickHouse's JSON reader needs checked first is here.

(Splicing the record's fields into the envelope would spare the server the Tuple, about 15% of
its work, but the `bytes.replace` passes it takes cost Python as much: measured, not kept.)
"""

from __future__ import annotations

import re

BAD_ESCAPE = "malformed JSON: a backslash escape JSON does not have (ClickHouse would read it as text)"
# A backslash and what follows it: a JSON escape, or (group 1) anything else.
_ESCAPE = re.compile(rb'\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}|(.))', re.DOTALL)


def bad_escape(data: bytes | bytearray) -> int | None:
    """The line (1-based) of the first backslash escape JSON does not allow (`\\x41`), or None.
    ClickHouse's JSON reader takes one as the bare character; a scan of the batch's backslashes
    is cheap (most batches have none)."""
    if b"\\" not in data:
        return None
    for match in _ESCAPE.finditer(data):
        if match.group(1) is not None:
            return data.count(b"\n", 0, match.start()) + 1
    return None
