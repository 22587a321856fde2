"""notify-async: an asyncio client for the Notify email API that survives key rotations.

::

    from notify_async import NotifyClient

    async with NotifyClient() as client:  # the key comes from NOTIFY_API_KEY
        for key in await client.api_keys.list():
            print(key.name, key.prefix)

Everything public is importable from here; the modules behind it are private.
"""

from ._api_keys import ApiKeys
from ._client import DEFAULT_BASE_URL, NotifyClient
from ._credentials import (
    CallableKeyProvider,
    ChainKeyProvider,
    CredentialProvider,
    EnvKeyProvider,
    FileKeyProvider,
    KeyChangeHook,
    KeyListener,
    LeasingCredentialProvider,
    StaticKeyProvider,
    WatchingCredentialProvider,
    WritableCredentialProvider,
)
from ._emails import Emails
from ._exceptions import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    CredentialError,
    InternalServerError,
    InvalidResponseError,
    KeyStoreError,
    NotFoundError,
    NotifyError,
    OutcomeUnknownConnectionError,
    OutcomeUnknownError,
    OutcomeUnknownInvalidResponseError,
    OutcomeUnknownServerError,
    OutcomeUnknownTimeoutError,
    PermissionDeniedError,
    RateLimitError,
)
from ._logs import setup_from_environment as _setup_from_environment
from ._models import ApiKey, RegeneratedApiKey, SendEmailResult
from ._retry import Backoff, RetryPolicy
from ._version import __version__

_setup_from_environment()

__all__ = [
    "DEFAULT_BASE_URL",
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "ApiKey",
    "ApiKeys",
    "AuthenticationError",
    "Backoff",
    "BadRequestError",
    "CallableKeyProvider",
    "ChainKeyProvider",
    "CredentialError",
    "CredentialProvider",
    "Emails",
    "EnvKeyProvider",
    "FileKeyProvider",
    "InternalServerError",
    "InvalidResponseError",
    "KeyChangeHook",
    "KeyListener",
    "KeyStoreError",
    "LeasingCredentialProvider",
    "NotFoundError",
    "NotifyClient",
    "NotifyError",
    "OutcomeUnknownConnectionError",
    "OutcomeUnknownError",
    "OutcomeUnknownInvalidResponseError",
    "OutcomeUnknownServerError",
    "OutcomeUnknownTimeoutError",
    "PermissionDeniedError",
    "RateLimitError",
    "RegeneratedApiKey",
    "RetryPolicy",
    "SendEmailResult",
    "StaticKeyProvider",
    "WatchingCredentialProvider",
    "WritableCredentialProvider",
    "__version__",
]
