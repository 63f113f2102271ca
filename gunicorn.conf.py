"""gunicorn settings for `make run` and production, read from the same settings object as the app.

No --preload: the model, its numba code and the scheduler thread are created in each worker after
the fork (forking after numba has run kills the child, and threads do not survive a fork).
"""

from portal.settings import load_settings

_settings = load_settings()

bind = f"0.0.0.0:{_settings.port}"
workers = _settings.web_concurrency
worker_class = "gthread"
threads = 4
timeout = _settings.gunicorn_timeout_s
graceful_timeout = 30
preload_app = False
accesslog = None
wsgi_app = "app:create_app()"
