"""dpone_protocol: the message contract between taps, targets and the runner.

Imports nothing from taps, targets, the runner or any database driver.
"""

from dpone_protocol.codec import DEFAULT_CODEC, Codec, Frame, MessageReader, MessageWriter
from dpone_protocol.errors import (
    ConfigError,
    DataError,
    DponeError,
    FatalError,
    ProtocolError,
    TransientError,
)
from dpone_protocol.messages import (
    ActivateVersionMessage,
    BatchEncoding,
    BatchMessage,
    Message,
    MessageType,
    RecordMessage,
    SchemaMessage,
    StateMessage,
)

__all__ = [
    "DEFAULT_CODEC",
    "ActivateVersionMessage",
    "BatchEncoding",
    "BatchMessage",
    "Codec",
    "ConfigError",
    "DataError",
    "DponeError",
    "FatalError",
    "Frame",
    "Message",
    "MessageReader",
    "MessageType",
    "MessageWriter",
    "ProtocolError",
    "RecordMessage",
    "SchemaMessage",
    "StateMessage",
    "TransientError",
]
