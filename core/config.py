"""The one typed configuration tree of mailpipe.

Owns: the pydantic model of every key with its documented default, loading a
TOML file, ``MAILPIPE_*`` environment overrides, and turning validation errors
into one line naming the key, the value and what was expected.

Must not: be imported as a global. ``load()`` is called once at start and the
resulting ``Config`` is passed down explicitly.

Environment overrides: ``MAILPIPE_DATA_DIR``, ``MAILPIPE_BROKER_URL`` and, for
nested keys, ``MAILPIPE_<SECTION>__<KEY>`` (e.g. ``MAILPIPE_INGRESS__SMTP_PORT``).
"""

from __future__ import annotations

import ipaddress
import re
import socket
import tomllib
from pathlib import Path
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from mailpipe.core.errors import ConfigError

EMBEDDED_BROKER = "spool://"
STAGES = ("antivirus", "spam", "rules", "route", "local", "remote")
FilterStage = Literal["antivirus", "spam", "rules"]
FILTER_STAGES: tuple[FilterStage, ...] = ("antivirus", "spam", "rules")


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class IngressConfig(Section):
    listen: str = "127.0.0.1"              #: address every SMTP listener binds
    smtp_port: int = Field(2525, ge=0, le=65535)          #: MX listener (25 in production)
    submission_port: int = Field(2587, ge=0, le=65535)    #: STARTTLS submission (587)
    smtps_port: int = Field(2465, ge=0, le=65535)         #: implicit TLS submission (465)
    max_message_size: int = Field(25 * 1024 * 1024, gt=0)  #: bytes, advertised in SIZE
    max_recipients: int = Field(100, gt=0)                 #: per message (452 4.5.3 beyond)
    max_connections: int = Field(200, gt=0)                #: all listeners together
    max_connections_per_ip: int = Field(20, gt=0)
    max_errors: int = Field(10, gt=0)                      #: errors per session before 421
    max_messages_per_connection: int = Field(1000, gt=0)
    command_timeout: float = Field(300.0, gt=0)            #: seconds (RFC 5321 4.5.3.2)
    data_timeout: float = Field(600.0, gt=0)               #: seconds for the whole DATA phase
    trusted_networks: list[str] = []                       #: CIDRs allowed to relay without AUTH
    max_header_size: int = Field(1024 * 1024, gt=0)        #: bytes of the header section (552 5.3.4 beyond)
    max_line_length: int = Field(1000, ge=512)             #: command line octets incl. CRLF (500 5.5.2 beyond)
    greet_pause: float = Field(0.5, ge=0)                  #: MX port: wait this long (s) before the greeting; early talkers are refused
    tls_handshake_timeout: float = Field(30.0, gt=0)       #: seconds for a TLS handshake (SMTPS and STARTTLS)
    greet_pass_ttl: float = Field(86400.0, ge=0)           #: an IP that waited for the greeting skips the pause this long (s)
    publish_threads: int = Field(2, gt=0)                  #: commit threads (spool write + confirmed publish), each one batch at a time
    publish_batch: int = Field(16, ge=1, le=1000)          #: most queue IDs accepted at once that share one broker message (group commit); 1 = one message each
    in_flow_delay: float = Field(1.0, ge=0)                #: pause a new message (at MAIL) up to this long (s) while delivery is behind (Postfix's in_flow_delay); 0 = off
    in_flow_backlog: int = Field(64, ge=0)                 #: "behind": more ready broker messages (batches of queue IDs) than this on the smtp_in queue
    processes: int = Field(1, ge=1, le=64)                 #: SMTP ingress processes of `mailpipe serve`, sharing the ports (SO_REUSEPORT); connection limits apply per process

    @field_validator("trusted_networks")
    @classmethod
    def _cidrs(cls, value: list[str]) -> list[str]:
        for item in value:
            ipaddress.ip_network(item, strict=False)
        return value


class PipelineConfig(Section):
    filters: list[FilterStage] = list(FILTER_STAGES)  #: order of filter stages
    sweep_after: float = Field(300.0, gt=0)    #: republish a message whose stage has not advanced for this long (s)
    sweep_interval: float = Field(30.0, gt=0)  #: how often the sweeper and scheduler run (s)
    max_redeliveries: int = Field(5, ge=1)     #: crashes of one message before it is dead-lettered
    trace_retention: float = Field(7 * 86400.0, gt=0)  #: keep traces of finished messages this long (s)


class WorkerConfig(Section):
    concurrency: int = Field(8, gt=0)          #: threads per worker process
    prefetch: int = Field(1, gt=0)             #: prefetch multiplier
    processes: int = Field(1, gt=0)            #: worker processes started by `mailpipe serve`
    nice: int = Field(10, ge=0, le=19)         #: `serve` runs its workers this much nicer: accepting mail comes first


def _daemon_url(value: str | None) -> str | None:
    """clamd/spamd address: "tcp://host:port" or "unix:/path" (checked when the config is loaded)."""
    from mailpipe.core.endpoint import parse_endpoint
    if value is not None:
        try:
            parse_endpoint(value)
        except ConfigError:
            raise ValueError('expected "tcp://host:port" or "unix:/path"') from None
    return value


class AntivirusConfig(Section):
    clamd: str | None = None                   #: "tcp://host:port" or "unix:/path"; None = not configured
    on_error: Literal["defer", "accept"] = "defer"   #: clamd unreachable: wait (fail closed) or accept unscanned
    action: Literal["quarantine", "discard"] = "quarantine"  #: what happens to infected mail
    timeout: float = Field(30.0, gt=0)
    retry_after: float = Field(60.0, gt=0)     #: first retry when clamd is down (s), doubling

    @field_validator("clamd")
    @classmethod
    def _clamd_url(cls, value: str | None) -> str | None:
        return _daemon_url(value)


class SpamConfig(Section):
    spamd: str | None = None                   #: "tcp://host:port" or "unix:/path"; None = not configured
    on_error: Literal["defer", "accept"] = "defer"
    tag_threshold: float = 5.0
    junk_threshold: float = 5.0
    quarantine_threshold: float = 10.0
    discard_threshold: float = 20.0
    max_size: int = Field(512 * 1024, gt=0)    #: larger messages are not scanned, as spamc does
    skip_authenticated: bool = True
    gtube_action: Literal["junk", "score"] = "junk"  #: GTUBE test mail: "junk" (lands in Junk, so the spam path can be checked end to end) or "score" (thresholds as for any mail)
    timeout: float = Field(30.0, gt=0)
    retry_after: float = Field(60.0, gt=0)

    @field_validator("spamd")
    @classmethod
    def _spamd_url(cls, value: str | None) -> str | None:
        return _daemon_url(value)


class RulesConfig(Section):
    file: Path | None = None                   #: operator rules file (TOML); None = no rules
    reload_interval: float = Field(1.0, ge=0)  #: seconds between checks of the rules file for changes


class DnsConfig(Section):
    nameservers: list[str] = []                #: "ip" or "ip:port"; empty = the system resolver
    timeout: float = Field(5.0, gt=0)
    cache_max_ttl: float = Field(3600.0, ge=0)  #: cap on how long a resolved destination is cached (s)


class RelayConfig(Section):
    smtp_port: int = Field(25, ge=1, le=65535)   #: port used on MX hosts
    enabled: bool = True                         #: False: remote mail waits deferred in the spool
    static_routes: dict[str, str] = {}           #: domain -> "host:port" ("*" = smarthost)
    retry_first: float = Field(300.0, gt=0)      #: seconds before the first retry
    retry_max: float = Field(4000.0, gt=0)       #: cap on the backoff
    max_lifetime: float = Field(5 * 86400.0, gt=0)   #: give up (DSN) after this long
    delay_warning: float | None = None           #: send a delay DSN after this long; None = off
    connect_timeout: float = Field(30.0, gt=0)
    command_timeout: float = Field(300.0, gt=0)
    max_per_destination: int = Field(20, gt=0)   #: concurrent connections per destination
    rate_per_destination: int | None = None      #: messages per minute per destination; None = unlimited
    max_received_headers: int = Field(50, gt=0)  #: loop detection
    require_tls_domains: list[str] = []          #: domains that need verified TLS
    tls_ca_file: Path | None = None              #: CA bundle to verify remote servers; None = the system's
    greeting_timeout: float = Field(300.0, gt=0)     #: wait for the 220 greeting (RFC 5321 4.5.3.2.1)
    data_init_timeout: float = Field(120.0, gt=0)    #: wait for 354 after DATA (4.5.3.2.4)
    data_block_timeout: float = Field(180.0, gt=0)   #: each send of message data (4.5.3.2.5)
    data_end_timeout: float = Field(600.0, gt=0)     #: wait for the reply to the final "." (4.5.3.2.6)
    connection_cache_time: float = Field(2.0, ge=0)  #: keep an idle connection for reuse this long (s); 0 = no reuse
    connection_reuse_limit: int = Field(100, gt=0)   #: messages per connection before it is closed
    prefer_ipv6: bool = False                    #: try AAAA addresses before A addresses
    concurrency_wait: float = Field(0.0, ge=0)   #: seconds a worker thread may wait for a free per-destination slot; 0 = never wait: the message is re-queued (slot_retry) and the thread serves other mail
    slot_retry: float = Field(2.0, gt=0)         #: all connection slots of a destination busy: try the message again after this long (s), via the spool, no attempt counted


class TlsConfig(Section):
    cert: Path | None = None
    key: Path | None = None


class AuthConfig(Section):
    plaintext_on_loopback: bool = True   #: allow password auth without TLS on loopback connections
    max_failures: int = Field(5, gt=0)   #: failed attempts per IP before a temporary lockout
    #: failed attempts against one account (from any addresses) before a temporary lockout of it
    max_account_failures: int = Field(10, gt=0)
    lockout_seconds: float = Field(300.0, gt=0)
    failure_delay_cap: float = Field(5.0, ge=0)   #: longest wait (s) before answering a failed attempt


class ImapConfig(Section):
    enabled: bool = True
    port: int = Field(2143, ge=0, le=65535)
    tls_port: int = Field(2993, ge=0, le=65535)
    idle_timeout: float = Field(1800.0, gt=0)
    max_connections_per_user: int = Field(20, gt=0)
    max_literal: int = Field(64 * 1024 * 1024, gt=0)
    listen: str = "127.0.0.1"                     #: address both IMAP listeners bind
    max_connections_per_ip: int = Field(50, gt=0)   #: open connections from one client IP
    max_line: int = Field(65536, gt=0)            #: bytes of one command line, literals excluded
    idle_poll: float = Field(0.5, gt=0)           #: seconds between mailbox checks during IDLE
    login_timeout: float = Field(60.0, gt=0)      #: seconds a connection may stay unauthenticated (absolute, from connect)
    max_connections: int = Field(1000, gt=0)      #: concurrent IMAP connections (both listeners); more get BYE [UNAVAILABLE]


class Pop3Config(Section):
    enabled: bool = True
    listen: str = "127.0.0.1"                  #: address both POP3 listeners bind
    port: int = Field(2110, ge=0, le=65535)    #: POP3 with STLS (110 in production)
    tls_port: int = Field(2995, ge=0, le=65535)  #: implicit TLS POP3S (995); only when [tls] is set
    idle_timeout: float = Field(600.0, gt=0)   #: seconds without a command before closing (RFC 1939: >= 600)
    max_line: int = Field(2048, ge=256)        #: longest command or SASL line in octets
    max_errors: int = Field(10, gt=0)          #: bad commands and failed logins before the session is closed
    max_connections: int = Field(500, gt=0)    #: concurrent POP3 connections (both listeners)
    login_timeout: float = Field(60.0, gt=0)   #: seconds a connection may stay unauthenticated (absolute, from connect)


class MetricsConfig(Section):
    enabled: bool = True
    port: int = Field(9425, ge=0, le=65535)
    listen: str = "127.0.0.1"                  #: address the /metrics and /healthz endpoint binds
    worker_stale_after: float = Field(15.0, gt=0)  #: a worker heartbeat older than this (s) counts as dead
    peers: list[str] = []                      #: other roles' "host:port" endpoints `queue status` sums for in/out rates


class BrokerConfig(Section):
    queue_type: Literal["classic", "quorum"] = "classic"  #: RabbitMQ only: stage queues declared as classic or quorum (replicated, per-consumer QoS); other kinds ignore it


MAIL_HOST_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"


class ClusterConfig(Section):
    mail_hosts: list[str] = []                 #: every mail host's name (its queue is `local.<name>`), for `queue status` and the workers' tasks; empty = one mail host
    mail_host: str | None = Field(None, pattern=MAIL_HOST_PATTERN)  #: the mail host this process serves (`mailpipe worker --mail-host`); None = the default one (queue `local`)

    @field_validator("mail_hosts")
    @classmethod
    def _names(cls, value: list[str]) -> list[str]:
        bad = [v for v in value if not re.match(MAIL_HOST_PATTERN, v)]
        if bad:
            raise ValueError(f"mail host names are lower-case letters, digits and '-': {bad[0]!r}")
        return value


class ProcessConfig(Section):
    user: str | None = None     #: started as root: after binding its ports, every process runs as this user (name or uid); None = stay as started (a warning when root)
    group: str | None = None    #: with `user`: this group (name or gid); None = the user's primary group


class Config(BaseSettings):
    """The whole configuration. Every key has a default; see README for the file form."""

    model_config = SettingsConfigDict(
        env_prefix="MAILPIPE_", env_nested_delimiter="__", extra="forbid",
    )

    data_dir: Path = Path("./mailpipe-data")     #: everything mailpipe writes lives here
    hostname: str = Field(default_factory=socket.gethostname)  #: used in greetings and Received
    broker_url: str = EMBEDDED_BROKER            #: "spool://" (embedded) or "amqp://..." / "redis://..."
    database_url: str | None = None              #: None = sqlite file in data_dir
    spool_url: str = ""                          #: "" = the filesystem spool in data_dir/spool; "file:///path" elsewhere
    queue_prefix: str = ""                       #: prefix for broker queue names
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    event_loop: Literal["auto", "uvloop", "asyncio"] = "auto"   #: servers' asyncio loop; auto = uvloop when installed

    ingress: IngressConfig = IngressConfig()
    pipeline: PipelineConfig = PipelineConfig()
    worker: WorkerConfig = WorkerConfig()
    antivirus: AntivirusConfig = AntivirusConfig()
    spam: SpamConfig = SpamConfig()
    rules: RulesConfig = RulesConfig()
    dns: DnsConfig = DnsConfig()
    relay: RelayConfig = RelayConfig()
    tls: TlsConfig = TlsConfig()
    auth: AuthConfig = AuthConfig()
    imap: ImapConfig = ImapConfig()
    pop3: Pop3Config = Pop3Config()
    metrics: MetricsConfig = MetricsConfig()
    process: ProcessConfig = ProcessConfig()
    broker: BrokerConfig = BrokerConfig()
    cluster: ClusterConfig = ClusterConfig()

    @classmethod
    def settings_customise_sources(
        cls, settings_cls, init_settings, env_settings, dotenv_settings, file_secret_settings,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # environment beats the file, which is passed as init values
        return (env_settings, init_settings)

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir.resolve() / 'mailpipe.db'}"


def _describe(error: Mapping[str, Any], raw: dict[str, Any]) -> str:
    key = ".".join(str(part) for part in error["loc"])
    value = error.get("input")
    if isinstance(value, dict):
        value = "{...}"
    return f"{key} = {value!r}: {error['msg']}"


def load(path: Path | str | None = None, **overrides: Any) -> Config:
    """Read the TOML file (if any), apply env overrides, validate; raise ConfigError on one line."""
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file {path}: not found") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"config file {path}: {exc}") from None
    raw.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return Config(**raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        more = len(exc.errors()) - 1
        suffix = f" (and {more} more)" if more else ""
        raise ConfigError(f"config error: {_describe(first, raw)}{suffix}") from None
