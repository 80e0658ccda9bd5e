"""SyncHub settings. Every value comes from the environment (see .env.example)."""

import datetime
import sys
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env("SECRET_KEY", default="insecure-dev-only-key-change-me" if DEBUG else environ.Env.NOTSET)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

# Field encryption keys (Fernet, urlsafe base64, 32 bytes), newest first. Deliberately separate from
# SECRET_KEY so that rotating one never destroys the other. No default: a missing key is a loud error.
FIELD_ENCRYPTION_KEYS = env.list("FIELD_ENCRYPTION_KEYS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI / Redoc files served by us: /api/docs/ works offline, no CDN
    # Before django_q: its `qcluster` command wraps django-q2's to register schedules at start (ops/apps.py).
    "ops",
    "django_q",
    "axes",
    "sync",
    "connectors",
    "connectors.woocommerce",
    "connectors.lightspeed",
    "connectors.tiendanube",
    "connectors.mulesoft",
    "connectors.mdm",
    "customers",
    "commerce",
    # After sync: its run-finished receiver reads the failure streak sync's own receiver has just moved.
    "alerts",
]

MIDDLEWARE = [
    # First: /healthz and /readyz answer before host validation and the HTTPS redirect (probes use IPs, http).
    "ops.middleware.HealthProbeMiddleware",
    # Next: JSON (never an HTML page) from /api/ and webhook routes, and the early size caps.
    "sync.api.middleware.JsonErrorMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last (django-axes' requirement): answers a locked-out login attempt.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

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
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------------
# `manage.py qcluster` (django-q2 workers) vs web / one-off processes: they differ in connection reuse below.
IS_QCLUSTER = len(sys.argv) > 1 and sys.argv[1] == "qcluster"
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL + IMMEDIATE: concurrent qcluster workers otherwise fail at once with "database is locked".
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
elif IS_QCLUSTER:
    # qcluster processes keep their PostgreSQL session between broker steps and tasks (without it almost every
    # step opened a new session: 23 tasks/s and no gain from a second cluster, docs/performance.md B9). Safe:
    # django-q2 closes every connection before it forks a worker, so no socket is shared; never with the pool
    # (forked workers sharing a pool break, stack-notes §5), so DB_POOL is ignored here. 0 = a session per step.
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("Q_CONN_MAX_AGE", default=300)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
elif env.bool("DB_POOL", default=False):
    # Pool only web processes: forked qcluster workers sharing a pool break (stack-notes §5).
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache: shared across processes (qinfo, health, throttles, invalidation versions) --------------
CACHES = {"default": env.cache("CACHE_URL", default="dbcache://synchub_cache")}

# --- Login throttling (django-axes; docs/security.md). Axes' backend must come first. ---------------
AUTHENTICATION_BACKENDS = [
    "sync.auth.LoginThrottleBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_ENABLED = env.bool("AXES_ENABLED", default=True)
# Failures before a lockout; each listed parameter locks on its own: one username (from any address) and
# one client address (whatever usernames it tries).
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_COOLOFF_TIME = datetime.timedelta(minutes=env.float("AXES_COOLOFF_MINUTES", default=15))
AXES_RESET_ON_SUCCESS = True
AXES_HTTP_RESPONSE_CODE = 429
# Behind a reverse proxy, how many proxies append to X-Forwarded-For (0: use REMOTE_ADDR only).
AXES_IPWARE_PROXY_COUNT = env.int("AXES_PROXY_COUNT", default=0) or None
AXES_IPWARE_META_PRECEDENCE_ORDER = (
    ("HTTP_X_FORWARDED_FOR", "REMOTE_ADDR") if env.int("AXES_PROXY_COUNT", default=0) else ("REMOTE_ADDR",)
)
AXES_SENSITIVE_PARAMETERS = ["password"]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = env("STATIC_ROOT", default=str(BASE_DIR / "staticfiles"))

EMAIL_BACKEND = env("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="synchub@localhost")
# SMTP for the smtp backend (alert emails); Django's defaults otherwise (localhost:25, no auth).
EMAIL_HOST = env("EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("EMAIL_PORT", default=25)
EMAIL_HOST_USER = env("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)
EMAIL_USE_SSL = env.bool("EMAIL_USE_SSL", default=False)
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=10)  # a hung SMTP server must not hold an alert task

# --- Alerts (docs/alerts.md): failure streaks and staleness for every connection ------------------
ALERTS_ENABLED = env.bool("ALERTS_ENABLED", default=True)
ALERTS_FROM_EMAIL = env("ALERTS_FROM_EMAIL", default="")  # empty: DEFAULT_FROM_EMAIL
# Prefix of the admin link in alert texts (e.g. https://synchub.example.com); empty: a path only.
ALERTS_SITE_URL = env("ALERTS_SITE_URL", default="")
ALERTS_WEBHOOK_TIMEOUT = env.float("ALERTS_WEBHOOK_TIMEOUT", default=5.0)

# --- Security (production values come from the environment; see README "check --deploy") ----------
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
# Paths (regexes, no leading slash) served over plain http despite SECURE_SSL_REDIRECT, e.g. ^metrics$ for a
# Prometheus that scrapes each web process inside the network (docs/deploy.md).
SECURE_REDIRECT_EXEMPT = env.list("SECURE_REDIRECT_EXEMPT", default=[])
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env.bool("BEHIND_TLS_PROXY", default=False) else None
X_FRAME_OPTIONS = "DENY"
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=2_621_440)
# Deepest JSON nesting any body may have (API, webhooks): deeper is a 400, never a RecursionError (core/bodies.py).
JSON_MAX_DEPTH = env.int("JSON_MAX_DEPTH", default=64)
# Longest query string accepted on /api/ and /connectors/ (OAuth callbacks included): longer is a 400.
QUERY_STRING_MAX_BYTES = env.int("QUERY_STRING_MAX_BYTES", default=8192)
# Activity rows an outsider can cause (webhooks with a forged signature): at most this many per connection and
# window; past it nothing is written (sync.activity.activity_record_limited).
ACTIVITY_UNTRUSTED_LIMIT = env.int("ACTIVITY_UNTRUSTED_LIMIT", default=10)
ACTIVITY_UNTRUSTED_WINDOW_SECONDS = env.int("ACTIVITY_UNTRUSTED_WINDOW_SECONDS", default=3600)

# --- django-q2. timeout < retry so a live task is never re-delivered; see stack-notes ---------------
# Broker: Redis when Q_REDIS_URL is set, the ORM (the default database) otherwise (docs/deploy.md).
Q_WORKERS = env.int("Q_WORKERS", default=2)
Q_REDIS_URL = env("Q_REDIS_URL", default="")
Q_CLUSTER = {
    # The queue key (and the Redis list name): every web process and qcluster of one deployment shares it.
    "name": env("Q_CLUSTER_NAME", default="synchub"),
    "workers": Q_WORKERS,
    "queue_limit": Q_WORKERS,
    "bulk": 1,
    "timeout": env.int("Q_TIMEOUT", default=900),
    "retry": env.int("Q_RETRY", default=1200),
    "max_attempts": 3,
    "ack_failures": True,
    "save_limit": 500,
    "catch_up": False,
    "poll": env.float("Q_POLL", default=0.5),
    "recycle": 200,
    "sync": env.bool("Q_SYNC", default=False),
    "label": "Django Q2",
}
if Q_REDIS_URL:
    # Timeouts unless the URL sets its own: a hung Redis must fail /readyz, not hang it. The read timeout
    # stays above the broker's 1 s blocking pop.
    _sep = "&" if "?" in Q_REDIS_URL else "?"
    for _opt, _default in (("socket_connect_timeout", 5), ("socket_timeout", 10)):
        if f"{_opt}=" not in Q_REDIS_URL:
            Q_REDIS_URL, _sep = f"{Q_REDIS_URL}{_sep}{_opt}={_default}", "&"
    Q_CLUSTER["redis"] = Q_REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"
    # django-q2's ORM broker, with a one-statement FOR UPDATE SKIP LOCKED dequeue on PostgreSQL so that several
    # clusters do not all reach for the same queued task (ops/broker.py).
    Q_CLUSTER["broker_class"] = "ops.broker.select"
# Register every schedule after `migrate` and when a qcluster starts (ops/apps.py); false = only by
# `manage.py sync_schedules`.
SYNC_SCHEDULES_AUTOREGISTER = env.bool("SYNC_SCHEDULES_AUTOREGISTER", default=True)

# --- Operations: /metrics (Prometheus, bearer token; unset = 404), /healthz, /readyz ---------------
METRICS_TOKEN = env("METRICS_TOKEN", default="")
# /readyz fails when no qcluster finished a task for this long (the reaper runs every minute); 0 = skip.
READYZ_WORKER_MAX_AGE_SECONDS = env.int("READYZ_WORKER_MAX_AGE_SECONDS", default=300)

# --- DRF ------------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    # Token first: a call without (or with bad) credentials then gets 401 + "WWW-Authenticate: Token" on
    # every route (DRF takes the header from the first class; session-first would answer 403).
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["sync.api.permissions.IsStaff"],
    # JSON only, size- and depth-bounded (core/bodies.py).
    "DEFAULT_PARSER_CLASSES": ["sync.api.parsers.LimitedJSONParser"],
    # Every authenticated client (token or session) is throttled per user; the trigger scope comes on top.
    "DEFAULT_THROTTLE_CLASSES": ["sync.api.throttles.ApiUserThrottle"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "sync.api.pagination.StandardPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_THROTTLE_RATES": {
        "sync-trigger": env("THROTTLE_SYNC_TRIGGER", default="30/min"),
        "api-user": env("THROTTLE_API_USER", default="600/min"),
    },
    "COERCE_DECIMAL_TO_STRING": True,
    "EXCEPTION_HANDLER": "sync.api.exceptions.api_exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "SyncHub API",
    "DESCRIPTION": "Trigger, watch and steer synchronisation with upstream platforms.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Every status the global layers can answer (auth, throttles, parser, resolver, handler500), on every route.
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "sync.api.openapi.document_global_errors",
    ],
    # Several models have a "state" with different choices: name each enum after its model's choices.
    "ENUM_NAME_OVERRIDES": {
        "QueueStateEnum": "sync.models.QueueState",
        "LineStateEnum": "sync.models.LineState",
        "StatusStateEnum": "sync.models.StatusState",
    },
}

# --- Sync engine ----------------------------------------------------------------------------------
# The engine reaches connectors only through these dotted paths (sync.registry); a new upstream is one line here.
SYNC_CONNECTORS = {
    "woocommerce": "connectors.woocommerce.connector.connector",
    "lightspeed": "connectors.lightspeed.connector.connector",
    "tiendanube": "connectors.tiendanube.connector.connector",
    "mulesoft": "connectors.mulesoft.connector.connector",
    "mdm": "connectors.mdm.connector.connector",
}
SYNC_CONNECTION_MODEL = "connectors.Connection"
SYNC_BATCH_SIZE = env.int("SYNC_BATCH_SIZE", default=50)
# The fetcher writes each page's new records itself, in batches, in the page's transaction (docs/engine.md).
SYNC_PROCESS_ON_FETCH = env.bool("SYNC_PROCESS_ON_FETCH", default=True)
# PostgreSQL: page and batch transactions commit without waiting for the WAL flush (sync/bulk.py says why
# that is safe); the queue's settling always commits synchronously.
SYNC_ASYNC_COMMIT = env.bool("SYNC_ASYNC_COMMIT", default=True)
# Pages already fetched are stored in one transaction, up to this many records (1 = page by page). Each group
# costs a few round trips and a commit whatever its size (each ~10 ms here: the main thread waits for the GIL
# after every one): 3,000 ran a 50,000-customer first sync in 3.13 s against 3.47 s for 2,000 (4 interleaved
# rounds; 2,000 had beaten 1,000 too), for +8 MiB of peak RSS at 100,000 (B4; docs/performance.md). Up to two
# groups wait in memory (and at most MAX_PREFETCH_PAGES pages, sync/engine.py).
SYNC_FETCH_GROUP_RECORDS = env.int("SYNC_FETCH_GROUP_RECORDS", default=3000)
# How long the fetcher waits for more pages to fill a group before storing what it has (milliseconds; 0: never
# waits). An unchanged 50,000-customer rescan: 2.71 -> 2.47 s with 100 (6 interleaved rounds).
SYNC_FETCH_GROUP_WAIT_MS = env.int("SYNC_FETCH_GROUP_WAIT_MS", default=100)
# PostgreSQL: COPY rows in binary format where every column of the model has one (sync/bulk.py,
# copy_model_rows): no value rendered as text in Python nor parsed back by the server. Off: text COPY.
SYNC_BINARY_COPY = env.bool("SYNC_BINARY_COPY", default=True)
# PostgreSQL: a writer thread (its own connection) commits each group while the fetcher maps the next one.
# Off by default: measured 2.5x SLOWER at 100,000 records on a loaded 2-core machine (docs/performance.md).
SYNC_WRITE_PIPELINE = env.bool("SYNC_WRITE_PIPELINE", default=False)


def auto_or_bool(name: str, text: str) -> str | bool:
    """ "auto", True or False from a setting's text; anything else is refused (a typo must not turn it off)."""
    value = text.strip().lower()
    if value == "auto":
        return "auto"
    if value in ("true", "on", "yes", "1"):
        return True
    if value in ("false", "off", "no", "0"):
        return False
    raise ImproperlyConfigured(f"{name} must be auto, true or false, not {text!r}")


# A first sync's fetch side (requests, parse, hash, map, row encoding) in a forked process of its own, beside
# the writes instead of in turn with them on one interpreter lock (sync.fetchproc); PostgreSQL, or SQLite on a
# file. "auto" (the default): on SQLite, on Linux with two CPUs or more, where the writes are this process's
# own work (first syncs of 100,000 customers 4.39 against 5.02 s, 5 interleaved rounds on 2 cores; issue 20,
# docs/performance.md, twenty-eighth pass); off on PostgreSQL, whose server takes the other core (as fast as
# the thread there, or slower: 2-10 % in the twenty-first pass, 16 % in one A/B of the twenty-eighth). true /
# false force it on or off.
SYNC_FETCH_PROCESS = auto_or_bool("SYNC_FETCH_PROCESS", env.str("SYNC_FETCH_PROCESS", default="auto"))
# Page memos (sync.services.pagememo): a page fetched again, byte for byte (core.paging.Page.digest), takes
# its records' source hashes from the memo saved the last time instead of hashing each record again.
SYNC_PAGE_MEMO = env.bool("SYNC_PAGE_MEMO", default=True)
# While a run is active, CPython's collector passes over young objects every this many allocations instead
# of every 700 (core/gctune.py says why; 0 leaves the collector alone). 1,000,000 since issue 20's twenty-third
# pass: at 50,000 a real customer's few more containers put a first sync of 100,000 over the line, 19-26 passes
# of ~20 ms each (10-12 % of the run).
SYNC_GC_THRESHOLD = env.int("SYNC_GC_THRESHOLD", default=1_000_000)
SYNC_MAX_ATTEMPTS = env.int("SYNC_MAX_ATTEMPTS", default=3)
SYNC_RETRY_BASE_SECONDS = env.float("SYNC_RETRY_BASE_SECONDS", default=1.0)
SYNC_LEASE_SECONDS = env.int("SYNC_LEASE_SECONDS", default=120)
SYNC_RETENTION_DAYS = env.int("SYNC_RETENTION_DAYS", default=30)
# The scheduler tick of a fleet (sync.scheduler): at most this many runs of one kind queued in the broker at
# once (so also per tick: the catch-up rate after an outage), selected and marked in chunks of SYNC_TICK_CHUNK.
SYNC_TICK_MAX_ENQUEUE = env.int("SYNC_TICK_MAX_ENQUEUE", default=500)
SYNC_TICK_CHUNK = env.int("SYNC_TICK_CHUNK", default=1000)
# The mass-deletion guard: a full scan that would mark more than this many live rows deleted AND more than
# this fraction of them stops before deleting anything and asks a person ("apply deletions"). A scan that
# would mark every live row deleted (an upstream answering an empty list) always asks.
SYNC_MASS_DELETE_MIN_ROWS = env.int("SYNC_MASS_DELETE_MIN_ROWS", default=50)
SYNC_MASS_DELETE_FRACTION = env.float("SYNC_MASS_DELETE_FRACTION", default=0.10)
SYNC_HTTP_TIMEOUT = (
    env.float("SYNC_HTTP_CONNECT_TIMEOUT", default=5.0),
    env.float("SYNC_HTTP_READ_TIMEOUT", default=30.0),
)
SYNC_HTTP_MAX_TRIES = env.int("SYNC_HTTP_MAX_TRIES", default=4)
SYNC_MAX_RATE_LIMIT_WAIT = env.float("SYNC_MAX_RATE_LIMIT_WAIT", default=300.0)
# A response body over this many bytes is refused while it streams in (the page fails, the cursor stays).
SYNC_MAX_RESPONSE_BYTES = env.int("SYNC_MAX_RESPONSE_BYTES", default=20 * 1024 * 1024)
# Outbound guard: loopback/private targets are refused unless explicitly allowed (sandbox, tests).
OUTBOUND_ALLOW_LOOPBACK = env.bool("OUTBOUND_ALLOW_LOOPBACK", default=False)
OUTBOUND_ALLOW_PRIVATE = env.bool("OUTBOUND_ALLOW_PRIVATE", default=False)
# Public base URL used to build webhook / OAuth callback addresses given to upstreams.
PUBLIC_BASE_URL = env("PUBLIC_BASE_URL", default="http://127.0.0.1:8000")

# --- Connector-specific settings (read here so .env.example is the one list) ---------------------
MULESOFT_ACCESS_TOKEN = env("MULESOFT_ACCESS_TOKEN", default="")
MDM_INTEGRATION_ENABLED = env.bool("MDM_INTEGRATION_ENABLED", default=True)
INELIGIBLE_ITEMS_SYNC_ENABLED = env.bool("INELIGIBLE_ITEMS_SYNC_ENABLED", default=True)
INELIGIBLE_ITEMS_SYNC_CRON_SCHEDULE = env("INELIGIBLE_ITEMS_SYNC_CRON_SCHEDULE", default="0 * * * *")

# LOG_FORMAT=json: one JSON object per line (python-json-logger); both formats pass the redaction filter,
# and the JSON formatter redacts every field it writes (ops/logging.py).
LOG_FORMAT = env("LOG_FORMAT", default="plain")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"redact": {"()": "core.redaction.RedactingFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "ops.logging.JsonFormatter"},
    },
    # Logs go to stderr, always: stdout belongs to commands' output (progress lines, --json reports).
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stderr",
            "filters": ["redact"],
            "formatter": "json" if LOG_FORMAT == "json" else "plain",
        }
    },
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
