"""A protobuf model for the repository tests, built at run time in a private descriptor pool
(tests/store has no generated code): ``Post`` keyed by (user_id, -created, id), a view by
(topic, …) and indexes on ``title`` and the repeated ``tags``; ``Post2`` is the same message
with one field added (schema evolution)."""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from rony.store.repo import Index, KeyOrder, ModelSpec

_F = descriptor_pb2.FieldDescriptorProto


def _message_classes() -> tuple[Any, Any]:
    f = descriptor_pb2.FileDescriptorProto(name="tests_store_repo.proto", package="trepo")
    f.syntax = "proto3"
    for name, extra in (("Post", False), ("Post2", True)):
        m = f.message_type.add(name=name)
        fields = [
            ("user_id", 1, _F.TYPE_SINT64, False),
            ("id", 2, _F.TYPE_UINT64, False),
            ("created", 3, _F.TYPE_INT64, False),
            ("topic", 4, _F.TYPE_STRING, False),
            ("title", 5, _F.TYPE_STRING, False),
            ("tags", 6, _F.TYPE_STRING, True),
            ("body", 7, _F.TYPE_BYTES, False),
        ]
        if extra:
            fields.append(("likes", 8, _F.TYPE_INT32, False))
        for fname, number, ftype, repeated in fields:
            label = _F.LABEL_REPEATED if repeated else _F.LABEL_OPTIONAL
            m.field.add(name=fname, number=number, type=ftype, label=label)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(f)
    desc = pool.FindFileByName(f.name)
    post = message_factory.GetMessageClass(desc.message_types_by_name["Post"])
    post2 = message_factory.GetMessageClass(desc.message_types_by_name["Post2"])
    return post, post2


Post, Post2 = _message_classes()

TABLE = KeyOrder("", ("user_id", "-created", "id"), partition=1)
BY_TOPIC = KeyOrder("by_topic", ("topic", "user_id", "-created", "id"), partition=1)
INDEXES = (Index("title"), Index("tags"))


def spec(message: Any = None, name: str = "trepo.Post") -> ModelSpec[Any]:
    return ModelSpec(message or Post, TABLE, views=(BY_TOPIC,), indexes=INDEXES, name=name)
