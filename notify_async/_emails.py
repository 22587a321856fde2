"""``client.emails``: send an email, or send one from a template."""

from __future__ import annotations

__all__ = ["Emails", "check_recipient"]

import re
from collections.abc import Mapping

from ._errors import outcome_unknown
from ._exceptions import InvalidResponseError, OutcomeUnknownError
from ._models import Reader, SendEmailResult
from ._requester import Requester
from ._retry import RetryPolicy

_read_result = Reader(SendEmailResult, field=None)

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
        self,
        *,
        to: str,
        subject: str,
        message: str,
        name: str | None = None,
        timeout: float | None = None,
        extra_headers: Mapping[str, str] | None = None,
    ) -> SendEmailResult:
        """Send an email (``POST /send-email``).

        Args:
            to: the recipient's address.
            subject: the subject line.
            message: the body.
            name: the sender's display name, if any.
            timeout: seconds each attempt may take, instead of the client's ``timeout``.
            extra_headers: headers for this call only.
        """
        # The common case, inline: a call per field cost more than the checks themselves.
        # Anything else goes to the checks that say what is wrong (and accept a str
        # subclass).
        if type(to) is not str or not _ONE_ADDRESS.fullmatch(to):
            to = check_recipient(to)
        if type(subject) is not str or not subject or subject.isspace():
            subject = _text("subject", subject)
        if type(message) is not str or not message or message.isspace():
            message = _text("message", message)
        payload = {"to": to, "subject": subject, "message": message}
        if name is not None:
            payload["name"] = _text("name", name)
        try:
            return await self._client.request(
                "POST",
                "/send-email",
                policy=RetryPolicy.UNSENT_ONLY,
                json=payload,
                outcome_advice=_SEND_OUTCOME,
                timeout=timeout,
                extra_headers=extra_headers,
                reader=_read_result,
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
        timeout: float | None = None,
        extra_headers: Mapping[str, str] | None = None,
    ) -> SendEmailResult:
        """Send an email from a template (``POST /send-email-from-template``).

        Args:
            template_id: the template's id.
            to: the recipient's address.
            variables: values for the template's placeholders (strings only).
            from_: the sender address, if not the template's default.
            timeout: seconds each attempt may take, instead of the client's ``timeout``.
            extra_headers: headers for this call only.
        """
        payload: dict[str, object] = {
            "templateId": _text("template_id", template_id),
            "to": check_recipient(to),
        }
        if from_ is not None:
            payload["from"] = _text("from_", from_)
        if variables is not None:
            if not all(isinstance(k, str) and isinstance(v, str) for k, v in variables.items()):
                raise ValueError("variables must map str to str, e.g. {'first_name': 'Ada'}")
            payload["variables"] = dict(variables)
        try:
            return await self._client.request(
                "POST",
                "/send-email-from-template",
                policy=RetryPolicy.UNSENT_ONLY,
                json=payload,
                outcome_advice=_SEND_OUTCOME,
                timeout=timeout,
                extra_headers=extra_headers,
                reader=_read_result,
            )
        except InvalidResponseError as error:
            unusable = error
        raise _outcome_unknown(unusable, "/send-email-from-template")


def _outcome_unknown(unusable: InvalidResponseError, path: str) -> OutcomeUnknownError:
    # A 2xx reached Notify, and nothing usable came back: the email may have gone out.
    return outcome_unknown(unusable, "POST", path, advice=_SEND_OUTCOME)


def _text(field: str, value: object) -> str:
    # The local Notify server applies the same rule (a str, not blank), so that a test
    # against it catches what production would.
    if not isinstance(value, str):
        raise ValueError(f"{field} must be a str, got {type(value).__name__}")
    if not value or value.isspace():  # the same test as the inline one in send()
        raise ValueError(f"{field} must not be empty or blank")
    return value


# What makes a value something other than one address. Checked one by one, so the error
# can say what is wrong with the value rather than quote a pattern.
_SEPARATORS = {",": "a comma", ";": "a semicolon"}


# Exactly the values the checks below accept: one @ with text on both sides, and none of
# whitespace, a comma, a semicolon or an angle bracket. Anything else goes through the
# checks one by one, which say what is wrong with it.
_ONE_ADDRESS = re.compile(r"[^\s@,;<>]+@[^\s@,;<>]+")


def check_recipient(to: object, *, field: str = "to") -> str:
    """Return ``to`` if it has the shape of one email address; raise ValueError if not.

    One address is ``local@domain``: exactly one ``@`` with text on both sides, and no
    spaces, commas, semicolons or angle brackets. A list (``"a@x.com, b@x.com"``) or a
    display-name form (``"Ada <ada@example.com>"``) is refused: send one email per
    recipient, to the bare address. Only the shape is checked; whether the mailbox exists
    is for Notify to find out.
    """
    if type(to) is str and _ONE_ADDRESS.fullmatch(to):
        return to  # the common case, at the cost of one regex match
    value = _text(field, to)
    shown = value if len(value) <= 80 else value[:77] + "..."
    for separator, what in _SEPARATORS.items():
        if separator in value:
            raise ValueError(
                f"{field} must be one email address like name@example.com, got {shown!r}, "
                f"which has {what}: send one email per recipient"
            )
    if "<" in value or ">" in value:
        raise ValueError(
            f"{field} must be a bare email address like name@example.com, got {shown!r}: "
            "pass only the address (a display name does not go in the recipient)"
        )
    if any(char.isspace() for char in value):
        raise ValueError(
            f"{field} must be one email address like name@example.com, got {shown!r}, "
            "which has a space in it"
        )
    local, at, domain = value.partition("@")
    if not at:
        raise ValueError(
            f"{field} must be an email address like name@example.com, got {shown!r}, which has no @"
        )
    if "@" in domain:
        raise ValueError(
            f"{field} must be one email address like name@example.com, got {shown!r}, "
            "which has more than one @"
        )
    if not local or not domain:
        raise ValueError(
            f"{field} must be an email address like name@example.com, got {shown!r}, "
            f"which has nothing {'before' if not local else 'after'} the @"
        )
    return value
