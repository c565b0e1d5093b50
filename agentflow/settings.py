"""AgentFlow settings: one file, every knob read from the environment.

With no environment at all the product runs embedded: a SQLite file in WAL mode, a
file-backed Huey queue and no Redis. Set DATABASE_URL and REDIS_URL for the real
deployment (PostgreSQL, RedisHuey, channels-redis).
"""
import os
import secrets
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
# A local .env is read when present; real environment variables win over it.
if (BASE_DIR / ".env").exists():
    environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

# Runtime files of the embedded default: database, Huey queue, artifacts, generated keys.
VAR_DIR = Path(env("AGENTFLOW_VAR_DIR", default=str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)


def _local_secret(name):
    """A random secret kept in VAR_DIR, made on first use, for installs that set none."""
    path = VAR_DIR / name
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


# Signs sessions and CSRF tokens.
SECRET_KEY = env("SECRET_KEY", default=None) or _local_secret("secret_key")
# Encrypts provider credentials at rest; separate so rotating SECRET_KEY keeps them readable.
CRYPTOGRAPHY_KEY = env("CRYPTOGRAPHY_KEY", default=None) or _local_secret("cryptography_key")
# Old CRYPTOGRAPHY_KEYs that still decrypt (never encrypt) until rotate_credentials_key has run.
CRYPTOGRAPHY_KEY_FALLBACKS = env.list("CRYPTOGRAPHY_KEY_FALLBACKS", default=[])
# Environment variables a workflow source may read its key from (`api_key_env`), as shell
# patterns; editors choose the name, so keep it to provider keys.
PROVIDER_KEY_ENV_ALLOWED = env.list("PROVIDER_KEY_ENV_ALLOWED", default=["*_API_KEY"])
# Debug pages and verbose errors; never on in production.
DEBUG = env.bool("DEBUG", default=False)
# Host names this server answers to.
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"])
# Origins trusted for CSRF on unsafe requests (scheme://host[:port]).
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
# Public base URL used in links printed by commands and returned by the API.
BASE_URL = env("BASE_URL", default="http://127.0.0.1:8000")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "channels",
    "huey.contrib.djhuey",
    "agentflow",
    "accounts",
    "providers",
    "workflows",
    "runs",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "agentflow.middleware.StaticFilesMiddleware",  # WhiteNoise
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "accounts.middleware.CurrentOrganizationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "agentflow.urls"
WSGI_APPLICATION = "agentflow.wsgi.application"
ASGI_APPLICATION = "agentflow.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "accounts.context_processors.organization",
            ],
        },
    },
]

# Database: a SQLite file by default; DATABASE_URL=postgres://… for the real deployment.
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'agentflow.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["OPTIONS"] = {
        # WAL lets the web server read while the worker writes; IMMEDIATE transactions take
        # the write lock up front so concurrent writers wait (timeout) instead of failing.
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": env.int("SQLITE_BUSY_TIMEOUT_S", default=20),
    }
    # The test database is a file (not in memory) so that worker processes started by the
    # tests share it; one per test process, so concurrent test runs never clobber each other.
    DATABASES["default"]["TEST"] = {
        "NAME": env("SQLITE_TEST_NAME", default=str(VAR_DIR / f"test-{os.getpid()}.sqlite3")),
    }
else:
    # A pool per process: under ASGI every request runs on a thread of its own, so
    # thread-bound persistent connections would mean a new PostgreSQL backend per request.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": env.int("DB_POOL_MIN_SIZE", default=2),
        "max_size": env.int("DB_POOL_MAX_SIZE", default=20),  # connections one process may hold
        "timeout": env.float("DB_POOL_TIMEOUT_S", default=20),  # wait for a free one before failing
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Redis: optional. Without it Huey and the channel layer each use a SQLite file.
REDIS_URL = env("REDIS_URL", default="")

if REDIS_URL:
    HUEY = {
        "huey_class": "huey.RedisHuey",
        "name": env("HUEY_NAME", default="agentflow"),
        "url": REDIS_URL,
        "immediate": False,
        "utc": True,
    }
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL]},
        }
    }
else:
    HUEY = {
        "huey_class": "huey.SqliteHuey",
        "name": "agentflow",
        # The queue file; tests give each worker they start a file of its own.
        "filename": env("HUEY_FILENAME", default=str(VAR_DIR / "huey.sqlite3")),
        "immediate": False,
        "utc": True,
    }
    # Web server and worker are separate processes: live events travel through a small
    # SQLite file of their own (agentflow/channel_layer.py), polled by the web server.
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "agentflow.channel_layer.SqlitePubSubChannelLayer",
            "CONFIG": {
                # The file every web server and worker process of this install shares.
                "path": env("CHANNEL_LAYER_FILE", default=str(VAR_DIR / "channels.sqlite3")),
                # Seconds between the web server's reads of that file (the live delay it adds).
                "poll_interval": env.float("CHANNEL_LAYER_POLL_S", default=0.05),
            },
        }
    }
# Worker processes started by `manage.py start` (the Huey consumer's -w).
HUEY_WORKERS = env.int("HUEY_WORKERS", default=2)

# Runs: a worker's lease on a run lasts this long without a heartbeat before another may take it.
RUN_LEASE_TTL_S = env.float("RUN_LEASE_TTL_S", default=30)
# PostgreSQL: wait for the disk on every step commit, not only on a run's terminal ones.
RUN_DURABLE_STEP_COMMITS = env.bool("RUN_DURABLE_STEP_COMMITS", default=False)
# How often a running engine looks for cancel requests and human decisions.
RUN_POLL_S = env.float("RUN_POLL_S", default=0.5)
# A queued run nobody claimed for this long is enqueued again by the reaper.
RUN_REQUEUE_AFTER_S = env.float("RUN_REQUEUE_AFTER_S", default=120)
# Test-mode caps: wall time and tokens per run.
TEST_MODE_MAX_SECONDS = env.float("TEST_MODE_MAX_SECONDS", default=300)
TEST_MODE_MAX_TOKENS = env.int("TEST_MODE_MAX_TOKENS", default=20000)
# Largest single artifact file; larger outputs are noted, not stored.
ARTIFACT_MAX_BYTES = env.int("ARTIFACT_MAX_BYTES", default=10 * 1024 * 1024)

# Provider calls: tries of one source after its first retryable failure, before its fallbacks
# (a source's options.max_retries overrides), and the longest a retry-after is waited out.
PROVIDER_MAX_RETRIES = env.int("PROVIDER_MAX_RETRIES", default=2)
PROVIDER_MAX_RETRY_WAIT_S = env.float("PROVIDER_MAX_RETRY_WAIT_S", default=60)
# Circuit breaker per credential: consecutive failures that open it, and its cool-down.
BREAKER_FAILURES = env.int("BREAKER_FAILURES", default=5)
BREAKER_COOLDOWN_S = env.float("BREAKER_COOLDOWN_S", default=30)

AUTH_USER_MODEL = "accounts.User"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "accounts:login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"
STATIC_ROOT.mkdir(exist_ok=True)
# Whitenoise serves static files from the app directories when collectstatic was not run.
WHITENOISE_USE_FINDERS = True
MEDIA_ROOT = Path(env("MEDIA_ROOT", default=str(VAR_DIR / "media")))

# Cookies: secure flags follow the scheme of BASE_URL.
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = BASE_URL.startswith("https://")
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True

# Largest request body Django reads into memory; the spec has its own limit below it.
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=2 * 1024 * 1024)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["accounts.permissions.OrganizationPermission"],
    "DEFAULT_PARSER_CLASSES": [
        "agentflow.api.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_PAGINATION_CLASS": "agentflow.api.CursorPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.SearchFilter",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "agentflow.api.exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "AgentFlow API",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
}

# Limits on workflow specs; every one can be raised or lowered per deployment.
AGENTFLOW_SPEC_LIMITS = {
    "body_bytes": env.int("SPEC_MAX_BODY_BYTES", default=1024 * 1024),
    "nodes": env.int("SPEC_MAX_NODES", default=500),
    "depth": env.int("SPEC_MAX_DEPTH", default=32),
    "string_bytes": env.int("SPEC_MAX_STRING_BYTES", default=100 * 1024),
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    # Huey logs every task at INFO, the reaper's each minute included.
    # The vendor SDKs' HTTP client logs every request at INFO.
    "loggers": {
        "django.channels.server": {"level": "WARNING"},
        "huey": {"level": env("HUEY_LOG_LEVEL", default="WARNING")},
        "httpx": {"level": "WARNING"},
        "httpx2": {"level": "WARNING"},
        "httpcore": {"level": "WARNING"},
    },
}
