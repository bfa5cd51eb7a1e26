from rony.core.pb import options_pb2 as _options_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class EchoRequest(_message.Message):
    __slots__ = ("ID", "RandomText")
    ID_FIELD_NUMBER: _ClassVar[int]
    RANDOMTEXT_FIELD_NUMBER: _ClassVar[int]
    ID: int
    RandomText: str
    def __init__(self, ID: _Optional[int] = ..., RandomText: _Optional[str] = ...) -> None: ...

class EchoResponse(_message.Message):
    __slots__ = ("ReqID", "RandomText")
    REQID_FIELD_NUMBER: _ClassVar[int]
    RANDOMTEXT_FIELD_NUMBER: _ClassVar[int]
    ReqID: int
    RandomText: str
    def __init__(self, ReqID: _Optional[int] = ..., RandomText: _Optional[str] = ...) -> None: ...
