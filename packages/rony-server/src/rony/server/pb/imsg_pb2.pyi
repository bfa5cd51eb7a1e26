from rony.core.pb import msg_pb2 as _msg_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EdgeNode(_message.Message):
    __slots__ = ("ServerID", "ReplicaSet", "Hash", "GatewayAddr", "TunnelAddr")
    SERVERID_FIELD_NUMBER: _ClassVar[int]
    REPLICASET_FIELD_NUMBER: _ClassVar[int]
    HASH_FIELD_NUMBER: _ClassVar[int]
    GATEWAYADDR_FIELD_NUMBER: _ClassVar[int]
    TUNNELADDR_FIELD_NUMBER: _ClassVar[int]
    ServerID: bytes
    ReplicaSet: int
    Hash: int
    GatewayAddr: _containers.RepeatedScalarFieldContainer[str]
    TunnelAddr: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, ServerID: _Optional[bytes] = ..., ReplicaSet: _Optional[int] = ..., Hash: _Optional[int] = ..., GatewayAddr: _Optional[_Iterable[str]] = ..., TunnelAddr: _Optional[_Iterable[str]] = ...) -> None: ...

class TunnelMessage(_message.Message):
    __slots__ = ("SenderID", "SenderReplicaSet", "Store", "Envelope")
    SENDERID_FIELD_NUMBER: _ClassVar[int]
    SENDERREPLICASET_FIELD_NUMBER: _ClassVar[int]
    STORE_FIELD_NUMBER: _ClassVar[int]
    ENVELOPE_FIELD_NUMBER: _ClassVar[int]
    SenderID: bytes
    SenderReplicaSet: int
    Store: _containers.RepeatedCompositeFieldContainer[_msg_pb2.KeyValue]
    Envelope: _msg_pb2.MessageEnvelope
    def __init__(self, SenderID: _Optional[bytes] = ..., SenderReplicaSet: _Optional[int] = ..., Store: _Optional[_Iterable[_Union[_msg_pb2.KeyValue, _Mapping]]] = ..., Envelope: _Optional[_Union[_msg_pb2.MessageEnvelope, _Mapping]] = ...) -> None: ...
