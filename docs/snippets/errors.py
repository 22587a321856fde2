"""Handling the errors a send can end in, from the most specific to the most general."""

import asyncio
import logging

from notify_async import (
    APIConnectionError,
    AuthenticationError,
    BadRequestError,
    InternalServerError,
    NotifyClient,
    NotifyError,
    OutcomeUnknownError,
    RateLimitError,
)

log = logging.getLogger("receipts")


# --8<-- [start:handling]
async def send_receipt(client: NotifyClient, to: str) -> str:
    try:
        await client.emails.send(to=to, subject="Your receipt", message="Thanks!")
    except OutcomeUnknownError as exc:
        # The request reached Notify but the answer was lost: the email may have gone
        # out. Sending it again could deliver it twice, so flag it for a check instead.
        log.warning("receipt to %s: %s", to, exc)
        return "check"
    except RateLimitError as exc:
        # Notify asked for a longer wait than the client sleeps by itself (60 s).
        return f"later:{exc.retry_after}"
    except BadRequestError as exc:
        # The content was refused (a malformed address, say): retrying cannot help.
        log.warning("receipt to %s refused: %s", to, exc.server_message)
        return "refused"
    except AuthenticationError:
        # The key was rejected even after a reload from the provider: nobody published
        # the rotated key where this client loads it from. Alert a human.
        raise
    except (APIConnectionError, InternalServerError) as exc:
        # Notify unreachable (refused, DNS, TLS, a connect timeout), or unavailable (503),
        # even after the retries. Any other 5xx on a send is an OutcomeUnknownError.
        log.warning("Notify unavailable after %d attempts: %s", exc.attempts, exc)
        return "later"
    except NotifyError:
        raise  # anything else (403, 404, an invalid response) needs a person
    return "sent"


# --8<-- [end:handling]


async def main() -> None:
    async with NotifyClient() as client:
        print(await send_receipt(client, "ada@example.com"))
        # --8<-- [start:with-options]
        # A view with other settings; it shares the session and the key with `client`.
        fast = client.with_options(max_retries=0, timeout=5)
        await fast.emails.send(to="ada@example.com", subject="Ping", message="Fail fast.")
        # --8<-- [end:with-options]


if __name__ == "__main__":
    asyncio.run(main())
