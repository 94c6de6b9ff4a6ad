"""Probes and metrics, always open: /health, /ready (503 while stopping), /metrics (Prometheus)."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from .context import ApiContext, api_context

router = APIRouter()


@router.get("/health")
def health(ctx: ApiContext = Depends(api_context)):
    return {"status": "stopping" if ctx.readiness.stopping else "ok"}


@router.get("/ready")
def ready(ctx: ApiContext = Depends(api_context)):
    table = [warm.to_dict() for warm in ctx.pipeline.registry.warm]
    if ctx.readiness.stopping:
        return JSONResponse({"status": "stopping", "models": table}, status_code=503)
    return {"status": "ready", "models": table}


@router.get("/metrics")
def metrics(ctx: ApiContext = Depends(api_context)):
    return Response(ctx.pipeline.prometheus_text(), media_type=CONTENT_TYPE_LATEST)
