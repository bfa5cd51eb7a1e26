from google.protobuf import descriptor_pb2 as _descriptor_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor
RONY_CLI_FIELD_NUMBER: _ClassVar[int]
rony_cli: _descriptor.FieldDescriptor
RONY_NO_CLIENT_FIELD_NUMBER: _ClassVar[int]
rony_no_client: _descriptor.FieldDescriptor
RONY_INTERNAL_FIELD_NUMBER: _ClassVar[int]
rony_internal: _descriptor.FieldDescriptor
RONY_REST_FIELD_NUMBER: _ClassVar[int]
rony_rest: _descriptor.FieldDescriptor
RONY_MODEL_FIELD_NUMBER: _ClassVar[int]
rony_model: _descriptor.FieldDescriptor
RONY_ENVELOPE_FIELD_NUMBER: _ClassVar[int]
rony_envelope: _descriptor.FieldDescriptor
RONY_SKIP_JSON_FIELD_NUMBER: _ClassVar[int]
rony_skip_json: _descriptor.FieldDescriptor
RONY_INDEX_FIELD_NUMBER: _ClassVar[int]
rony_index: _descriptor.FieldDescriptor
RONY_HELP_FIELD_NUMBER: _ClassVar[int]
rony_help: _descriptor.FieldDescriptor
RONY_DEFAULT_FIELD_NUMBER: _ClassVar[int]
rony_default: _descriptor.FieldDescriptor

class RestOpt(_message.Message):
    __slots__ = ("method", "path", "bind_path_param", "bind_query_param", "json_encode")
    METHOD_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    BIND_PATH_PARAM_FIELD_NUMBER: _ClassVar[int]
    BIND_QUERY_PARAM_FIELD_NUMBER: _ClassVar[int]
    JSON_ENCODE_FIELD_NUMBER: _ClassVar[int]
    method: str
    path: str
    bind_path_param: _containers.RepeatedScalarFieldContainer[str]
    bind_query_param: _containers.RepeatedScalarFieldContainer[str]
    json_encode: bool
    def __init__(self, method: _Optional[str] = ..., path: _Optional[str] = ..., bind_path_param: _Optional[_Iterable[str]] = ..., bind_query_param: _Optional[_Iterable[str]] = ..., json_encode: _Optional[bool] = ...) -> None: ...

class ModelOpt(_message.Message):
    __slots__ = ("singleton", "global_datasource", "local_datasource", "table", "view")
    SINGLETON_FIELD_NUMBER: _ClassVar[int]
    GLOBAL_DATASOURCE_FIELD_NUMBER: _ClassVar[int]
    LOCAL_DATASOURCE_FIELD_NUMBER: _ClassVar[int]
    TABLE_FIELD_NUMBER: _ClassVar[int]
    VIEW_FIELD_NUMBER: _ClassVar[int]
    singleton: bool
    global_datasource: str
    local_datasource: str
    table: PrimaryKeyOpt
    view: _containers.RepeatedCompositeFieldContainer[PrimaryKeyOpt]
    def __init__(self, singleton: _Optional[bool] = ..., global_datasource: _Optional[str] = ..., local_datasource: _Optional[str] = ..., table: _Optional[_Union[PrimaryKeyOpt, _Mapping]] = ..., view: _Optional[_Iterable[_Union[PrimaryKeyOpt, _Mapping]]] = ...) -> None: ...

class PrimaryKeyOpt(_message.Message):
    __slots__ = ("part_key", "sort_key", "alias")
    PART_KEY_FIELD_NUMBER: _ClassVar[int]
    SORT_KEY_FIELD_NUMBER: _ClassVar[int]
    ALIAS_FIELD_NUMBER: _ClassVar[int]
    part_key: _containers.RepeatedScalarFieldContainer[str]
    sort_key: _containers.RepeatedScalarFieldContainer[str]
    alias: str
    def __init__(self, part_key: _Optional[_Iterable[str]] = ..., sort_key: _Optional[_Iterable[str]] = ..., alias: _Optional[str] = ...) -> None: ...

class CliOpt(_message.Message):
    __slots__ = ("protocol",)
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    protocol: str
    def __init__(self, protocol: _Optional[str] = ...) -> None: ...
