"""The bytes of the message envelope: the one module that knows the wire layout.

Every other module decodes JSON or calls these. Writers splice a record's JSON between
:func:`record_head` and :func:`record_tail`, which give the same bytes orjson writes for a
RecordMessage (type, stream, record, version, time_extracted, in that order, no spaces).
Readers on a hot path peek at that compact layout (:func:`peek_record_stream`,
:func:`opens_as_record`, :func:`peek_head`, :func:`split_record`); each answers None (or
False) whenever the bytes alone cannot settle it: an escaped name, spaces, another key order,
another writer. The caller then decodes the line, so a peek may be unsure but never wrong.
"""

from __future__ import annotations

import re

import orjson

# What a relay (the runner) writes last when the process feeding it died: a fragment with no
# final newline, so the reader sees a cut stream (InputCutError), never a clean end of input.
CUT_MARK = b'{"type":"INPUT_CUT"'

# With its comma: the type is exactly RECORD, not a longer word that starts like it.
_RECORD_OPEN = b'{"type":"RECORD",'
_STREAM_KEY = b'"stream":'
_RECORD_KEY = b',"record":'
_VERSION_KEY = b',"version":'
_EXTRACTED_KEY = b',"time_extracted":'

# A quote-free, backslash-free name in the compact layout; anything else is left to a decoder.
# One regex call is cheaper than startswith + find + slice + a backslash test in Python.
_RECORD_STREAM = re.compile(rb'\{"type":"RECORD","stream":"([^"\\]*)"').match
# The framework's own RECORD line: head, record body, optional version, time_extracted, end.
_OWN_RECORD = re.compile(
    rb'\{"type":"RECORD","stream":"([^"\\]*)","record":(\{.*\})(?:,"version":-?\d+)?,"time_extracted":"[^"\\]*"\}\n?',
    re.DOTALL,
).fullmatch
# Any compact RECORD line: version and time_extracted both optional (other writers leave them out).
_COMPACT_RECORD = re.compile(
    rb'\{"type":"RECORD","stream":"([^"\\]*)","record":(\{.*\})(?:,"version":-?\d+)?(?:,"time_extracted":"[^"\\]*")?\}\n?',
    re.DOTALL,
).fullmatch
# Type and stream near the start of a line, as every Singer implementation we know writes them.
_HEAD = re.compile(rb'\{\s*"type"\s*:\s*"([A-Z_]+)"\s*(?:,\s*"stream"\s*:\s*"((?:[^"\\]|\\.)*)")?').match


def record_head(stream: str) -> bytes:
    """`{"type":"RECORD","stream":<name>,"record":`: a record's JSON object follows it."""
    return _RECORD_OPEN + _STREAM_KEY + orjson.dumps(stream) + _RECORD_KEY


def record_tail(time_extracted: str | None = None, version: int | None = None) -> bytes:
    """What follows the record's JSON object, through the newline: version, time_extracted, end."""
    tail = b"" if version is None else _VERSION_KEY + str(int(version)).encode()
    if time_extracted is not None:
        tail += _EXTRACTED_KEY + orjson.dumps(time_extracted)
    return tail + b"}\n"


def peek_record_stream(line: bytes) -> bytes | None:
    """The stream name's UTF-8 bytes of a compact RECORD line, or None when a peek cannot tell
    (another message, another layout, a name with escapes): then decode the line."""
    match = _RECORD_STREAM(line)
    return None if match is None else match[1]


def opens_as_record(line: bytes) -> bool:
    """True when the line opens as a compact RECORD, worth a decode that expects one.
    False says nothing: a RECORD in another layout is still a RECORD."""
    return line.startswith(_RECORD_OPEN)


def peek_head(line: bytes) -> tuple[str, str | None] | None:
    """(type, stream) read from the first bytes of a line, spaces allowed; the stream is None for
    a STATE. None when the head does not say (another key order, a name with escapes, no stream)."""
    match = _HEAD(line)
    if match is None:
        return None
    kind, stream = match[1], match[2]
    if kind == b"STATE":
        return "STATE", None
    if stream is None or b"\\" in stream:
        return None
    return kind.decode(), stream.decode()


def split_record(line: bytes) -> tuple[bytes, bytes] | None:
    """(stream name bytes, the record's JSON object) of a line laid out exactly as
    ``record_head(name) + record + record_tail(time_extracted, version)`` writes it, with a
    time_extracted; None for any other line. Meant for lines the framework wrote itself: the
    record object is not parsed, only found between the envelope's bytes."""
    match = _OWN_RECORD(line)
    return None if match is None else (match[1], match[2])


def split_compact_record(line: bytes) -> tuple[bytes, bytes] | None:
    """(stream name bytes, the bytes between `"record":` and the envelope's tail) of a compact RECORD
    line, with or without version and time_extracted; None for any other layout.

    Unlike split_record, for lines from any writer, so the caller must parse what it gets: when
    that parses as one JSON object, it is the record (a valid object cannot be followed, inside
    itself, by the envelope's tail); when it does not, decode the whole line instead."""
    match = _COMPACT_RECORD(line)
    return None if match is None else (match[1], match[2])


def airbyte_record_head(name: str, namespace: str | None = None) -> bytes:
    """The start of an Airbyte RECORD of one stream, up to its emitted_at value."""
    head = b'{"type":"RECORD","record":{"stream":' + orjson.dumps(name)
    if namespace is not None:
        head += b',"namespace":' + orjson.dumps(namespace)
    return head + b',"emitted_at":'


def airbyte_record(head: bytes, emitted_at_ms: int, data: bytes) -> bytes:
    """One Airbyte RECORD line: `head` from :func:`airbyte_record_head`, `data` a JSON object."""
    return head + str(emitted_at_ms).encode() + b',"data":' + data + b"}}\n"
