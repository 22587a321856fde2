"""``client.emails``: send an email, or send one from a template."""

from __future__ import annotations

__all__ = ["Emails"]

from collections.abc import Mapping

from ._errors import outcome_unknown
from ._exceptions import InvalidResponseError, OutcomeUnknownError
from ._models import Parser, SendEmailResult
from ._requester import Requester
from ._retry import RetryPolicy

_parse_result = Parser(SendEmailResult, path="$")

_SEND_OUTCOME = (
    "the email may or may not have been sent. It was not retried, so that it is not sent "
    "twice; check the Notify dashboard before sending it again"
)


class Emails:
    """The email endpoints. Reached as ``client.emails``.

    Sends are retried only when the request provably did not take effect (not written,
    429, 503). Any other failure after sending raises ``OutcomeUnknownError``, because a
    second attempt could deliver a second email; so does a 2xx whose body is not a usable
    answer, since the server received the request.
    """

    def __init__(self, client: Requester) -> None:
        self._client = client

    async def send(
        self, *, to: str, subject: str, message: str, name: str | None = None
    ) -> SendEmailResult:
        """Send an email (``POST /send-email``).

        Args:
            to: the recipient's address.
            subject: the subject line.
            message: the body.
            name: the sender's display name, if any.
        """
        payload = {"to": _text("to", to), "subject": _text("subject", subject)}
        payload["message"] = _text("message", message, allow_blank=True)
        if name is not None:
            payload["name"] = _text("name", name)
        try:
            return _parse_result(
                await self._client.request(
                    "POST",
                    "/send-email",
                    policy=RetryPolicy.UNSENT_ONLY,
                    json=payload,
                    outcome_advice=_SEND_OUTCOME,
                )
            )
        except InvalidResponseError as error:
            unusable = error
        raise _outcome_unknown(unusable, "/send-email")

    async def send_template(
        self,
        *,
        template_id: str,
        to: str,
        variables: Mapping[str, str] | None = None,
        from_: str | None = None,
    ) -> SendEmailResult:
        """Send an email from a template (``POST /send-email-from-template``).

        Args:
            template_id: the template's id.
            to: the recipient's address.
            variables: values for the template's placeholders (strings only).
            from_: the sender address, if not the template's default.
        """
        payload: dict[str, object] = {
            "templateId": _text("template_id", template_id),
            "to": _text("to", to),
        }
        if from_ is not None:
            payload["from"] = _text("from_", from_)
        if variables is not None:
            if not all(isinstance(k, str) and isinstance(v, str) for k, v in variables.items()):
                raise ValueError("variables must map str to str, e.g. {'first_name': 'Ada'}")
            payload["variables"] = dict(variables)
        try:
            return _parse_result(
                await self._client.request(
                    "POST",
                    "/send-email-from-template",
                    policy=RetryPolicy.UNSENT_ONLY,
                    json=payload,
                    outcome_advice=_SEND_OUTCOME,
                )
            )
        except InvalidResponseError as error:
            unusable = error
        raise _outcome_unknown(unusable, "/send-email-from-template")


def _outcome_unknown(unusable: InvalidResponseError, path: str) -> OutcomeUnknownError:
    # A 2xx reached Notify, and nothing usable came back: the email may have gone out.
    # A parse failure comes after request() returned, so after at least one request.
    unusable.attempts = unusable.attempts or 1
    return outcome_unknown(unusable, "POST", path, advice=_SEND_OUTCOME)


def _text(field: str, value: object, *, allow_blank: bool = False) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{field} must be a str, got {type(value).__name__}")
    if not allow_blank and not value.strip():
        raise ValueError(f"{field} must not be empty")
    return value
