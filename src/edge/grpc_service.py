"""The Open Inference Protocol over gRPC: ``inference.GRPCInferenceService``.

The messages and the servicer base class are the ones the ``tritonclient[grpc]`` wheel
ships (``tritonclient.grpc.service_pb2*``), served by grpcio's asyncio server on the
node's event loop, beside the HTTP server (``grpc_listen``). Every call goes through
`edge.oip`, so gRPC and REST answer alike: same tiers, same errors, same statistics.

Implemented: ServerLive, ServerReady, ServerMetadata, ModelReady, ModelMetadata,
ModelConfig, ModelStatistics, RepositoryIndex, ModelInfer (typed ``contents`` or
``raw_input_contents`` in; ``raw_output_contents`` out, as Triton answers). The rest
(streaming, shared memory, model load/unload, trace and log settings) answer
UNIMPLEMENTED. A failure answers the gRPC code of its HTTP status with the same message.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import grpc
from aiohttp import web
from google.protobuf import json_format
from google.protobuf.message import Message
from tritonclient.grpc import model_config_pb2 as config_pb2
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as pb_grpc

from edge import oip
from edge.config import parse_hostport
from edge.node import EdgeNode
from edge.tensors import BadInput

log = logging.getLogger(__name__)
M = TypeVar("M", bound=Message)

# KServe datatype → the typed field of InferTensorContents that may carry it
CONTENTS = {"BOOL": "bool_contents", "INT8": "int_contents", "INT16": "int_contents",
            "INT32": "int_contents", "INT64": "int64_contents", "UINT8": "uint_contents",
            "UINT16": "uint_contents", "UINT32": "uint_contents", "UINT64": "uint64_contents",
            "FP32": "fp32_contents", "FP64": "fp64_contents", "BYTES": "bytes_contents"}
CODES = {400: grpc.StatusCode.INVALID_ARGUMENT, 404: grpc.StatusCode.NOT_FOUND,
         413: grpc.StatusCode.RESOURCE_EXHAUSTED, 503: grpc.StatusCode.UNAVAILABLE,
         508: grpc.StatusCode.FAILED_PRECONDITION}


def _code(status: int) -> grpc.StatusCode:
    return CODES.get(status, grpc.StatusCode.INVALID_ARGUMENT if status < 500
                     else grpc.StatusCode.UNAVAILABLE)


def _parse(doc: dict | list, message: M) -> M:
    return json_format.ParseDict(doc, message, ignore_unknown_fields=True)


class InferenceService(pb_grpc.GRPCInferenceServiceServicer):
    def __init__(self, node: EdgeNode) -> None:
        self.node = node

    async def _call(self, context: grpc.aio.ServicerContext,
                    answer: Callable[[], Awaitable[M]]) -> M:
        try:
            return await answer()
        except Exception as e:  # noqa: BLE001 - every failure becomes a status
            status = oip.error_status(e)
            if status is None:
                log.exception("gRPC call failed")
                await context.abort(grpc.StatusCode.INTERNAL,
                                    f"internal error: {type(e).__name__}")
            else:
                await context.abort(_code(status), str(e))
            raise  # abort() raises; this line is never reached

    async def ServerLive(self, request: pb.ServerLiveRequest,
                         context: grpc.aio.ServicerContext) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(self, request: pb.ServerReadyRequest,
                          context: grpc.aio.ServicerContext) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=oip.server_ready(self.node))

    async def ServerMetadata(self, request: pb.ServerMetadataRequest,
                             context: grpc.aio.ServicerContext) -> pb.ServerMetadataResponse:
        return _parse(oip.server_metadata(), pb.ServerMetadataResponse())

    async def ModelReady(self, request: pb.ModelReadyRequest,
                         context: grpc.aio.ServicerContext) -> pb.ModelReadyResponse:
        async def answer() -> pb.ModelReadyResponse:
            ready = await oip.model_ready(self.node, request.name, request.version or None, 0)
            return pb.ModelReadyResponse(ready=ready)
        return await self._call(context, answer)

    async def ModelMetadata(self, request: pb.ModelMetadataRequest,
                            context: grpc.aio.ServicerContext) -> pb.ModelMetadataResponse:
        async def answer() -> pb.ModelMetadataResponse:
            doc = await self.node.model_metadata(request.name, request.version or None)
            return _parse(doc, pb.ModelMetadataResponse())
        return await self._call(context, answer)

    async def ModelConfig(self, request: pb.ModelConfigRequest,
                          context: grpc.aio.ServicerContext) -> pb.ModelConfigResponse:
        async def answer() -> pb.ModelConfigResponse:
            info, _ = await self.node.resolve(request.name, request.version or None)
            config = _parse(oip.model_config(self.node, info), config_pb2.ModelConfig())
            return pb.ModelConfigResponse(config=config)
        return await self._call(context, answer)

    async def ModelStatistics(self, request: pb.ModelStatisticsRequest,
                              context: grpc.aio.ServicerContext
                              ) -> pb.ModelStatisticsResponse:
        async def answer() -> pb.ModelStatisticsResponse:
            doc = await oip.model_statistics(self.node, request.name or None,
                                             request.version or None, 0)
            return _parse(doc, pb.ModelStatisticsResponse())
        return await self._call(context, answer)

    async def RepositoryIndex(self, request: pb.RepositoryIndexRequest,
                              context: grpc.aio.ServicerContext
                              ) -> pb.RepositoryIndexResponse:
        async def answer() -> pb.RepositoryIndexResponse:
            models = await oip.repository_index(self.node, request.ready, 0)
            return _parse({"models": models}, pb.RepositoryIndexResponse())
        return await self._call(context, answer)

    async def ModelInfer(self, request: pb.ModelInferRequest,
                         context: grpc.aio.ServicerContext) -> pb.ModelInferResponse:
        started = time.perf_counter()

        async def answer() -> pb.ModelInferResponse:
            wanted = {out.name: True for out in request.outputs} or None
            result = await oip.infer(self.node, request.model_name,
                                     request.model_version or None, _inputs(request), wanted,
                                     0, started, binary_default=True)
            response = pb.ModelInferResponse(model_name=result.model_name,
                                             model_version=result.model_version,
                                             id=request.id)
            response.parameters["cache_tier"].string_param = result.tier
            response.parameters["region"].string_param = self.node.config.region
            for out in result.outputs:
                response.outputs.add(name=out.name, datatype=out.datatype, shape=out.shape)
                response.raw_output_contents.append(out.raw())
            return response
        return await self._call(context, answer)


def _inputs(request: pb.ModelInferRequest) -> list[oip.InferInput]:
    raw = list(request.raw_input_contents)
    if raw and len(raw) != len(request.inputs):
        raise BadInput(f"raw_input_contents holds {len(raw)} tensors for "
                       f"{len(request.inputs)} inputs")
    inputs = []
    for i, tensor in enumerate(request.inputs):
        item = oip.InferInput(tensor.name, tensor.datatype, list(tensor.shape))
        if raw:
            item.raw = raw[i]
        else:
            field = CONTENTS.get(tensor.datatype)
            if field is None:
                raise BadInput(f"input {tensor.name!r}: {tensor.datatype} data must come in "
                               "raw_input_contents")
            values = list(getattr(tensor.contents, field))
            if tensor.datatype == "BYTES":
                item.raw = b"".join(len(v).to_bytes(4, "little") + v for v in values)
            else:
                item.data = values
        inputs.append(item)
    return inputs


def serve(node: EdgeNode, listen: str) -> Callable[[web.Application], AsyncIterator[None]]:
    """An aiohttp cleanup context that runs the gRPC server beside the HTTP one."""
    async def run(_app: web.Application) -> AsyncIterator[None]:
        limit = node.config.max_body_bytes
        server = grpc.aio.server(options=[("grpc.max_receive_message_length", limit),
                                          ("grpc.max_send_message_length", 4 * limit)])
        pb_grpc.add_GRPCInferenceServiceServicer_to_server(InferenceService(node), server)
        host, port = parse_hostport(listen)
        if not server.add_insecure_port(f"{host}:{port}"):
            raise OSError(f"gRPC cannot listen on {host}:{port}")
        await server.start()
        log.info("gRPC inference service on %s:%d", host, port)
        yield
        await server.stop(grace=1.0)
    return run
