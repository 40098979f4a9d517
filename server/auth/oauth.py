"""OAuth 2.0 error answers (RFC 6749 §5.2): ``{"error", "error_description"}`` JSON, not an
OperationOutcome, because OAuth clients read these. :class:`OAuthError` still derives from the one
exception root, so if one escapes the auth endpoints it is answered with its status."""

from __future__ import annotations

from typing import Literal

from starlette.responses import JSONResponse

from server.errors import FhirError

ErrorCode = Literal["invalid_request", "invalid_client", "invalid_grant", "unauthorized_client",
                    "unsupported_grant_type", "invalid_scope"]
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


class OAuthError(FhirError):
    def __init__(self, error: ErrorCode, description: str, *, status: int | None = None) -> None:
        self.error = error
        self.description = description
        self.status = status or (401 if error == "invalid_client" else 400)  # type: ignore[misc]
        self.code = "login" if self.status == 401 else "invalid"  # type: ignore[misc]
        super().__init__(description)

    def response(self) -> JSONResponse:
        headers = dict(NO_STORE)
        if self.status == 401:
            headers["WWW-Authenticate"] = 'Bearer realm="yidang", error="invalid_client"'
        return JSONResponse({"error": self.error, "error_description": self.description},
                            status_code=self.status, headers=headers)
