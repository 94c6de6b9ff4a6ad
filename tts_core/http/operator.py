"""Operator routes: add, inspect and remove models while serving (POST/GET/DELETE /v1/models...).

Adding and removing are open only when TTS_API_KEY is set and sent; without a key they
answer 403 and say how to open them. `GET /v1/models/{name}` is guarded like /v1/models.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from ..config import name_problem
from ..errors import ConfigError, InputError
from ..live_models import ModelConflictError
from .context import GUARDED, ApiContext, api_context, operator_only, read_json
from .errors import ApiError, from_tts_error
from .protocol import AddModelBody, documented_body, error_responses

MODELS_ROUTE = "/v1/models"


def model_name(name: str) -> str:
    """The path's model name, if it can be one (400 otherwise: it is never looked up)."""
    if (problem := name_problem(name)) is not None:
        raise ApiError(400, problem[0].upper() + problem[1:] + ".", param="model",
                       code="invalid_name")
    return name


router = APIRouter()
OPERATOR = [Depends(operator_only("Adding and removing models", "operator_routes_closed")),
            *GUARDED]


def _answer(state, status: int = 200) -> JSONResponse:
    return JSONResponse(dict(state.to_dict(), object="model.status"), status_code=status)


@router.post(MODELS_ROUTE, dependencies=OPERATOR, status_code=202,
             openapi_extra=documented_body(AddModelBody),
             responses=error_responses(400, 401, 403, 409, 413, 422))
async def add_model(body: dict = Depends(read_json), ctx: ApiContext = Depends(api_context)):
    spec = body.get("spec")
    if not isinstance(spec, str) or not spec.strip():
        raise ApiError(422, "'spec' is required: a model spec as TTS_MODELS takes it, e.g. "
                            "'piper:en_US-lessac-medium'.", param="spec", code="missing_field")
    try:
        state = ctx.models.add(spec)
    except ConfigError as e:
        raise ApiError(400, str(e).removeprefix("TTS_MODELS: "), param="spec",
                       code="invalid_spec") from e
    except ModelConflictError as e:
        raise ApiError(409, str(e), param="spec", code="model_exists") from e
    return _answer(state, 202)


@router.get(MODELS_ROUTE + "/{name}", dependencies=GUARDED, responses=error_responses(400, 401, 404))
def model_status(name: str, ctx: ApiContext = Depends(api_context)):
    state = ctx.models.state(model_name(name))
    if state is None:
        raise ApiError(404, f"No model called {name!r} is loaded, loading or was removed. "
                            f"Loaded models: {', '.join(ctx.pipeline.registry.engines)}.",
                       param="model", code="model_not_found")
    return _answer(state)


@router.delete(MODELS_ROUTE + "/{name}", dependencies=OPERATOR, status_code=202,
               responses=error_responses(400, 401, 403, 409))
def remove_model(name: str, ctx: ApiContext = Depends(api_context)):
    try:
        state = ctx.models.remove(model_name(name))
    except ModelConflictError as e:
        raise ApiError(409, str(e), param="model", code="model_loading") from e
    except InputError as e:
        error = from_tts_error(e)
        if error.status == 400:  # the only model left
            error.status, error.code = 409, "last_model"
        raise error from e
    return _answer(state, 202)
