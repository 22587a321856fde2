"""Integrations that need an optional extra, one module each.

``notify_async.contrib.redis``: ``RedisKeyProvider``, installed with
``pip install 'notify-async[redis]'``. Nothing here is imported by ``notify_async`` itself,
so the core never depends on these extras.
"""
