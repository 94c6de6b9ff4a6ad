"""Operator routes: add, inspect and remove models while serving (POST/GET/DELETE /v1/models...).

Adding and removing are open only when TTS_API_KEY is set and sent; without a key they
answer 403 and say how to open them. `GET /v1/models/{name}` is guarded like /v1/models.
"""

from __future__ import annotations

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse

from .errors import ConfigError, InputError
from .live_models import ModelConflictError, ModelManager, manager_for
from .pipeline import Pipeline

MODELS_ROUTE = "/v1/models"


def add_operator_routes(api: FastAPI, pipeline: Pipeline, guarded: list, read_json) -> ModelManager:
    """Register the routes on `api`; `guarded` checks the key, `read_json` reads a bounded body."""
    from .http_api import ApiError, from_tts_error

    settings = pipeline.settings
    manager = manager_for(pipeline)

    def operator_only() -> None:
        if settings.api_key is None:
            raise ApiError(403, "Adding and removing models is open only when the server has an "
                                "API key: start it with TTS_API_KEY set and send "
                                "'Authorization: Bearer <key>'.", type_="permission_error",
                           code="operator_routes_closed")

    operator = [Depends(operator_only), *guarded]

    def answer(state, status: int = 200) -> JSONResponse:
        return JSONResponse(dict(state.to_dict(), object="model.status"), status_code=status)

    @api.post(MODELS_ROUTE, dependencies=operator)
    async def add_model(request: Request):
        body = await read_json(request, settings.max_body_bytes)
        spec = body.get("spec")
        if not isinstance(spec, str) or not spec.strip():
            raise ApiError(422, "'spec' is required: a model spec as TTS_MODELS takes it, e.g. "
                                "'piper:en_US-lessac-medium'.", param="spec", code="missing_field")
        try:
            state = manager.add(spec)
        except ConfigError as e:
            raise ApiError(400, str(e).removeprefix("TTS_MODELS: "), param="spec",
                           code="invalid_spec") from e
        except ModelConflictError as e:
            raise ApiError(409, str(e), param="spec", code="model_exists") from e
        return answer(state, 202)

    @api.get(MODELS_ROUTE + "/{name}", dependencies=guarded)
    def model_status(name: str):
        state = manager.state(name)
        if state is None:
            raise ApiError(404, f"No model called {name!r} is loaded, loading or was removed. "
                                f"Loaded models: {', '.join(pipeline.registry.engines)}.",
                           param="model", code="model_not_found")
        return answer(state)

    @api.delete(MODELS_ROUTE + "/{name}", dependencies=operator)
    def remove_model(name: str):
        try:
            state = manager.remove(name)
        except ModelConflictError as e:
            raise ApiError(409, str(e), param="model", code="model_loading") from e
        except InputError as e:
            error = from_tts_error(e)
            if error.status == 400:  # the only model left
                error.status, error.code = 409, "last_model"
            raise error from e
        return answer(state, 202)

    return manager
