"""A Python grpcio client that knows nothing of Fulfil's .proto files.

It discovers fulfil.v1.OrderService through server reflection, builds the
message classes from the reflected descriptors, creates an order and reads it
back. Usage: python3 grpcio_reflection.py HOST:PORT. Prints the created order
as JSON and exits non-zero on any failure.
"""

import json
import sys

import grpc
from google.protobuf import descriptor_pool, json_format, message_factory
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)


def main(target: str) -> int:
    channel = grpc.insecure_channel(target)
    database = ProtoReflectionDescriptorDatabase(channel)
    services = database.get_services()
    if "fulfil.v1.OrderService" not in services:
        print(f"OrderService not reflected: {services}", file=sys.stderr)
        return 1
    pool = descriptor_pool.DescriptorPool(database)
    service = pool.FindServiceByName("fulfil.v1.OrderService")

    def rpc(name, fields):
        method = service.methods_by_name[name]
        request_cls = message_factory.GetMessageClass(method.input_type)
        response_cls = message_factory.GetMessageClass(method.output_type)
        call = channel.unary_unary(
            f"/{service.full_name}/{name}",
            request_serializer=request_cls.SerializeToString,
            response_deserializer=response_cls.FromString,
        )
        return call(json_format.ParseDict(fields, request_cls()), timeout=10)

    created = rpc(
        "CreateOrder",
        {
            "customer_id": "python-client",
            "currency": "gbp",
            "line_items": [{"sku": "book", "quantity": 2, "unit_amount": 1250}],
        },
    )
    fetched = rpc("GetOrder", {"order_id": created.order_id})
    if fetched != created:
        print("GetOrder differs from CreateOrder", file=sys.stderr)
        return 1
    try:
        rpc("GetOrder", {"order_id": "does-not-exist"})
        print("unknown order was found", file=sys.stderr)
        return 1
    except grpc.RpcError as err:
        if err.code() != grpc.StatusCode.NOT_FOUND:
            print(f"unexpected status {err.code()}", file=sys.stderr)
            return 1
    print(json.dumps(json_format.MessageToDict(created, preserving_proto_field_name=True)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
