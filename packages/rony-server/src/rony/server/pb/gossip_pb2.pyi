from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class State(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ALIVE: _ClassVar[State]
    SUSPECT: _ClassVar[State]
    DEAD: _ClassVar[State]
    LEFT: _ClassVar[State]
ALIVE: State
SUSPECT: State
DEAD: State
LEFT: State

class Packet(_message.Message):
    __slots__ = ("Cluster", "From", "FromAddr", "Messages")
    CLUSTER_FIELD_NUMBER: _ClassVar[int]
    FROM_FIELD_NUMBER: _ClassVar[int]
    FROMADDR_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    Cluster: str
    From: str
    FromAddr: str
    Messages: _containers.RepeatedCompositeFieldContainer[Message]
    def __init__(self, Cluster: _Optional[str] = ..., From: _Optional[str] = ..., FromAddr: _Optional[str] = ..., Messages: _Optional[_Iterable[_Union[Message, _Mapping]]] = ...) -> None: ...

class Message(_message.Message):
    __slots__ = ("Ping", "IndirectPing", "Ack", "Nack", "Alive", "Suspect", "Dead", "PushPull")
    PING_FIELD_NUMBER: _ClassVar[int]
    INDIRECTPING_FIELD_NUMBER: _ClassVar[int]
    ACK_FIELD_NUMBER: _ClassVar[int]
    NACK_FIELD_NUMBER: _ClassVar[int]
    ALIVE_FIELD_NUMBER: _ClassVar[int]
    SUSPECT_FIELD_NUMBER: _ClassVar[int]
    DEAD_FIELD_NUMBER: _ClassVar[int]
    PUSHPULL_FIELD_NUMBER: _ClassVar[int]
    Ping: Ping
    IndirectPing: IndirectPing
    Ack: Ack
    Nack: Nack
    Alive: Alive
    Suspect: Suspect
    Dead: Dead
    PushPull: PushPull
    def __init__(self, Ping: _Optional[_Union[Ping, _Mapping]] = ..., IndirectPing: _Optional[_Union[IndirectPing, _Mapping]] = ..., Ack: _Optional[_Union[Ack, _Mapping]] = ..., Nack: _Optional[_Union[Nack, _Mapping]] = ..., Alive: _Optional[_Union[Alive, _Mapping]] = ..., Suspect: _Optional[_Union[Suspect, _Mapping]] = ..., Dead: _Optional[_Union[Dead, _Mapping]] = ..., PushPull: _Optional[_Union[PushPull, _Mapping]] = ...) -> None: ...

class Ping(_message.Message):
    __slots__ = ("SeqNo", "Node")
    SEQNO_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    SeqNo: int
    Node: str
    def __init__(self, SeqNo: _Optional[int] = ..., Node: _Optional[str] = ...) -> None: ...

class IndirectPing(_message.Message):
    __slots__ = ("SeqNo", "Node", "Addr", "Nack")
    SEQNO_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    ADDR_FIELD_NUMBER: _ClassVar[int]
    NACK_FIELD_NUMBER: _ClassVar[int]
    SeqNo: int
    Node: str
    Addr: str
    Nack: bool
    def __init__(self, SeqNo: _Optional[int] = ..., Node: _Optional[str] = ..., Addr: _Optional[str] = ..., Nack: _Optional[bool] = ...) -> None: ...

class Ack(_message.Message):
    __slots__ = ("SeqNo",)
    SEQNO_FIELD_NUMBER: _ClassVar[int]
    SeqNo: int
    def __init__(self, SeqNo: _Optional[int] = ...) -> None: ...

class Nack(_message.Message):
    __slots__ = ("SeqNo",)
    SEQNO_FIELD_NUMBER: _ClassVar[int]
    SeqNo: int
    def __init__(self, SeqNo: _Optional[int] = ...) -> None: ...

class Alive(_message.Message):
    __slots__ = ("Incarnation", "Node", "Addr", "Meta")
    INCARNATION_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    ADDR_FIELD_NUMBER: _ClassVar[int]
    META_FIELD_NUMBER: _ClassVar[int]
    Incarnation: int
    Node: str
    Addr: str
    Meta: bytes
    def __init__(self, Incarnation: _Optional[int] = ..., Node: _Optional[str] = ..., Addr: _Optional[str] = ..., Meta: _Optional[bytes] = ...) -> None: ...

class Suspect(_message.Message):
    __slots__ = ("Incarnation", "Node", "From")
    INCARNATION_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    FROM_FIELD_NUMBER: _ClassVar[int]
    Incarnation: int
    Node: str
    From: str
    def __init__(self, Incarnation: _Optional[int] = ..., Node: _Optional[str] = ..., From: _Optional[str] = ...) -> None: ...

class Dead(_message.Message):
    __slots__ = ("Incarnation", "Node", "From")
    INCARNATION_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    FROM_FIELD_NUMBER: _ClassVar[int]
    Incarnation: int
    Node: str
    From: str
    def __init__(self, Incarnation: _Optional[int] = ..., Node: _Optional[str] = ..., From: _Optional[str] = ...) -> None: ...

class NodeState(_message.Message):
    __slots__ = ("Node", "Addr", "Meta", "Incarnation", "State")
    NODE_FIELD_NUMBER: _ClassVar[int]
    ADDR_FIELD_NUMBER: _ClassVar[int]
    META_FIELD_NUMBER: _ClassVar[int]
    INCARNATION_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    Node: str
    Addr: str
    Meta: bytes
    Incarnation: int
    State: State
    def __init__(self, Node: _Optional[str] = ..., Addr: _Optional[str] = ..., Meta: _Optional[bytes] = ..., Incarnation: _Optional[int] = ..., State: _Optional[_Union[State, str]] = ...) -> None: ...

class PushPull(_message.Message):
    __slots__ = ("Join", "Nodes")
    JOIN_FIELD_NUMBER: _ClassVar[int]
    NODES_FIELD_NUMBER: _ClassVar[int]
    Join: bool
    Nodes: _containers.RepeatedCompositeFieldContainer[NodeState]
    def __init__(self, Join: _Optional[bool] = ..., Nodes: _Optional[_Iterable[_Union[NodeState, _Mapping]]] = ...) -> None: ...
