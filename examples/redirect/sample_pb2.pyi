from rony.core.pb import options_pb2 as _options_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class InfoRequest(_message.Message):
    __slots__ = ("ReplicaSet", "RandomText")
    REPLICASET_FIELD_NUMBER: _ClassVar[int]
    RANDOMTEXT_FIELD_NUMBER: _ClassVar[int]
    ReplicaSet: int
    RandomText: str
    def __init__(self, ReplicaSet: _Optional[int] = ..., RandomText: _Optional[str] = ...) -> None: ...

class InfoResponse(_message.Message):
    __slots__ = ("ServerID", "RandomText")
    SERVERID_FIELD_NUMBER: _ClassVar[int]
    RANDOMTEXT_FIELD_NUMBER: _ClassVar[int]
    ServerID: str
    RandomText: str
    def __init__(self, ServerID: _Optional[str] = ..., RandomText: _Optional[str] = ...) -> None: ...
