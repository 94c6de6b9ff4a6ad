"""The HTTP API beside the UI: OpenAI-compatible speech, model and voice lists, probes, operators.

One router per concern (`speech`, `voices`, `probes`, `operator`), their wire shapes in
`protocol`, errors in OpenAI's shape from `errors`, what the routes share in `context`,
streamed answers in `streaming`; `api.create_http_api` puts them together.
"""

from .api import create_http_api

__all__ = ["create_http_api"]
