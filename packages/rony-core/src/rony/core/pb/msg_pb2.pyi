from rony.core.pb import options_pb2 as _options_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RedirectReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ReplicaSetSession: _ClassVar[RedirectReason]
    ReplicaSetRequest: _ClassVar[RedirectReason]
    Reserved1: _ClassVar[RedirectReason]
    Reserved2: _ClassVar[RedirectReason]
    Reserved3: _ClassVar[RedirectReason]
    Reserved4: _ClassVar[RedirectReason]
ReplicaSetSession: RedirectReason
ReplicaSetRequest: RedirectReason
Reserved1: RedirectReason
Reserved2: RedirectReason
Reserved3: RedirectReason
Reserved4: RedirectReason

class MessageEnvelope(_message.Message):
    __slots__ = ("Constructor", "RequestID", "JsonEncoded", "Message", "Auth", "Header")
    CONSTRUCTOR_FIELD_NUMBER: _ClassVar[int]
    REQUESTID_FIELD_NUMBER: _ClassVar[int]
    JSONENCODED_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    AUTH_FIELD_NUMBER: _ClassVar[int]
    HEADER_FIELD_NUMBER: _ClassVar[int]
    Constructor: int
    RequestID: int
    JsonEncoded: bool
    Message: bytes
    Auth: bytes
    Header: _containers.RepeatedCompositeFieldContainer[KeyValue]
    def __init__(self, Constructor: _Optional[int] = ..., RequestID: _Optional[int] = ..., JsonEncoded: _Optional[bool] = ..., Message: _Optional[bytes] = ..., Auth: _Optional[bytes] = ..., Header: _Optional[_Iterable[_Union[KeyValue, _Mapping]]] = ...) -> None: ...

class Ping(_message.Message):
    __slots__ = ("ID",)
    ID_FIELD_NUMBER: _ClassVar[int]
    ID: int
    def __init__(self, ID: _Optional[int] = ...) -> None: ...

class Pong(_message.Message):
    __slots__ = ("ID",)
    ID_FIELD_NUMBER: _ClassVar[int]
    ID: int
    def __init__(self, ID: _Optional[int] = ...) -> None: ...

class KeyValue(_message.Message):
    __slots__ = ("Key", "Value")
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    Key: str
    Value: str
    def __init__(self, Key: _Optional[str] = ..., Value: _Optional[str] = ...) -> None: ...

class MessageContainer(_message.Message):
    __slots__ = ("Length", "Envelopes", "SyncRun")
    LENGTH_FIELD_NUMBER: _ClassVar[int]
    ENVELOPES_FIELD_NUMBER: _ClassVar[int]
    SYNCRUN_FIELD_NUMBER: _ClassVar[int]
    Length: int
    Envelopes: _containers.RepeatedCompositeFieldContainer[MessageEnvelope]
    SyncRun: bool
    def __init__(self, Length: _Optional[int] = ..., Envelopes: _Optional[_Iterable[_Union[MessageEnvelope, _Mapping]]] = ..., SyncRun: _Optional[bool] = ...) -> None: ...

class Error(_message.Message):
    __slots__ = ("Code", "Items", "Description")
    CODE_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    Code: str
    Items: str
    Description: str
    def __init__(self, Code: _Optional[str] = ..., Items: _Optional[str] = ..., Description: _Optional[str] = ...) -> None: ...

class Redirect(_message.Message):
    __slots__ = ("Reason", "Edges", "WaitInSec")
    REASON_FIELD_NUMBER: _ClassVar[int]
    EDGES_FIELD_NUMBER: _ClassVar[int]
    WAITINSEC_FIELD_NUMBER: _ClassVar[int]
    Reason: RedirectReason
    Edges: _containers.RepeatedCompositeFieldContainer[Edge]
    WaitInSec: int
    def __init__(self, Reason: _Optional[_Union[RedirectReason, str]] = ..., Edges: _Optional[_Iterable[_Union[Edge, _Mapping]]] = ..., WaitInSec: _Optional[int] = ...) -> None: ...

class Edge(_message.Message):
    __slots__ = ("ReplicaSet", "ServerID", "HostPorts")
    REPLICASET_FIELD_NUMBER: _ClassVar[int]
    SERVERID_FIELD_NUMBER: _ClassVar[int]
    HOSTPORTS_FIELD_NUMBER: _ClassVar[int]
    ReplicaSet: int
    ServerID: str
    HostPorts: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, ReplicaSet: _Optional[int] = ..., ServerID: _Optional[str] = ..., HostPorts: _Optional[_Iterable[str]] = ...) -> None: ...

class Edges(_message.Message):
    __slots__ = ("Nodes",)
    NODES_FIELD_NUMBER: _ClassVar[int]
    Nodes: _containers.RepeatedCompositeFieldContainer[Edge]
    def __init__(self, Nodes: _Optional[_Iterable[_Union[Edge, _Mapping]]] = ...) -> None: ...

class GetNodes(_message.Message):
    __slots__ = ("ReplicaSet",)
    REPLICASET_FIELD_NUMBER: _ClassVar[int]
    ReplicaSet: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, ReplicaSet: _Optional[_Iterable[int]] = ...) -> None: ...

class GetAllNodes(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class HttpBody(_message.Message):
    __slots__ = ("ContentType", "Header", "Body")
    CONTENTTYPE_FIELD_NUMBER: _ClassVar[int]
    HEADER_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    ContentType: str
    Header: _containers.RepeatedCompositeFieldContainer[KeyValue]
    Body: bytes
    def __init__(self, ContentType: _Optional[str] = ..., Header: _Optional[_Iterable[_Union[KeyValue, _Mapping]]] = ..., Body: _Optional[bytes] = ...) -> None: ...
