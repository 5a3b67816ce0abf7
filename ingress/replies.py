"""SMTP replies of the ingress, as named constants shared by code and tests.

Every reply after the greeting and EHLO carries an enhanced status code
(RFC 2034, RFC 3463). None of them ever includes exception text. Templates
with ``{...}`` fields are filled with sanitised values only.
"""

# -- connection ---------------------------------------------------------
GREETING = "220 {hostname} ESMTP mailpipe"
BYE = "221 2.0.0 Bye"
EARLY_TALKER = "554 5.5.1 Protocol error: talked before the greeting"
TOO_MANY_CONNECTIONS = "421 4.7.0 Too many connections, try again later"
TOO_MANY_FROM_IP = "421 4.7.0 Too many connections from your address, try again later"
TOO_MANY_ERRORS = "421 4.7.0 Too many errors, closing connection"
TOO_MANY_MESSAGES = "421 4.7.0 Too many messages in this connection, closing"
TIMEOUT = "421 4.4.2 Timeout exceeded, closing connection"
BDAT_BROKEN = "421 4.5.0 Malformed BDAT, closing connection"
SHUTTING_DOWN = "421 4.3.2 Service shutting down"

# -- simple commands ----------------------------------------------------
OK = "250 2.0.0 Ok"
HELO_OK = "250 {hostname}"
VRFY = "252 2.0.0 Cannot VRFY user, but will accept message and attempt delivery"
EXPN_REFUSED = "502 5.5.1 EXPN command is disabled"
OBSOLETE = "502 5.5.1 Command not implemented"
HELP = "214 2.0.0 Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP STARTTLS AUTH"
UNKNOWN_COMMAND = "500 5.5.2 Error: command not recognized"
LINE_TOO_LONG = "500 5.5.2 Error: line too long"
BAD_BYTES = "500 5.5.2 Error: invalid characters in command"
NON_ASCII = "553 5.6.7 Non-ASCII address requires SMTPUTF8"
SYNTAX_HELO = "501 5.5.4 Syntax: EHLO hostname"
SYNTAX_MAIL = "501 5.5.4 Syntax: MAIL FROM:<address>"
SYNTAX_RCPT = "501 5.5.4 Syntax: RCPT TO:<address>"
SYNTAX_NO_ARGS = "501 5.5.4 Syntax: no arguments allowed"
SYNTAX_BDAT = "501 5.5.4 Syntax: BDAT chunk-size [LAST]"
SYNTAX_AUTH = "501 5.5.4 Syntax: AUTH mechanism [initial-response]"
BAD_SENDER_SYNTAX = "501 5.1.7 Bad sender address syntax"
BAD_ADDRESS = "501 5.1.3 Bad recipient address syntax"
BAD_PARAM_VALUE = "501 5.5.4 Bad parameter value"
UNKNOWN_PARAM = "555 5.5.4 Unsupported MAIL/RCPT parameter"

# -- sequence -----------------------------------------------------------
NEED_HELO = "503 5.5.1 Error: send HELO/EHLO first"
NEED_MAIL = "503 5.5.1 Error: need MAIL command"
NEED_RCPT = "503 5.5.1 Error: need RCPT command"
NESTED_MAIL = "503 5.5.1 Error: nested MAIL command"
BAD_SEQUENCE = "503 5.5.1 Error: bad sequence of commands"
ALREADY_AUTH = "503 5.5.1 Error: already authenticated"
AUTH_IN_TRANSACTION = "503 5.5.1 Error: AUTH not allowed during a mail transaction"

# -- TLS ------------------------------------------------------------------
TLS_READY = "220 2.0.0 Ready to start TLS"
TLS_UNAVAILABLE = "454 4.7.0 TLS not available"
TLS_ACTIVE = "503 5.5.1 Error: TLS already active"

# -- AUTH (RFC 4954) --------------------------------------------------------
AUTH_OK = "235 2.7.0 Authentication successful"
AUTH_FAILED = "535 5.7.8 Authentication credentials invalid"
AUTH_LOCKED = "454 4.7.0 Temporary authentication failure, try again later"
AUTH_NEEDS_TLS = "538 5.7.11 Encryption required for requested authentication mechanism"
AUTH_MECHANISM = "504 5.5.4 Unrecognized authentication mechanism"
AUTH_CANCELLED = "501 5.7.0 Authentication cancelled"
AUTH_BAD_BASE64 = "501 5.5.2 Cannot decode response"
AUTH_REQUIRED = "530 5.7.0 Authentication required"
SENDER_NOT_OWNED = "553 5.7.1 <{address}>: Sender address rejected: not owned by user {user}"

# -- transaction ------------------------------------------------------------
MAIL_OK = "250 2.1.0 Ok"
RCPT_OK = "250 2.1.5 Ok"
CHUNK_OK = "250 2.0.0 {size} octets received"
DATA_AFTER_BDAT = "503 5.5.1 Error: DATA not allowed after BDAT"
START_DATA = "354 End data with <CR><LF>.<CR><LF>"
QUEUED = "250 2.0.0 Ok: queued as {queue_id}"
UNKNOWN_USER = "550 5.1.1 <{address}>: Recipient address rejected: User unknown"
RELAY_DENIED = "554 5.7.1 <{address}>: Relay access denied"
TOO_MANY_RECIPIENTS = "452 4.5.3 Too many recipients"
NO_VALID_RECIPIENTS = "554 5.5.1 Error: no valid recipients"
SIZE_EXCEEDED = "552 5.3.4 Message size exceeds fixed maximum message size"
HEADER_TOO_BIG = "552 5.3.4 Message header size exceeds limit"
BARE_NEWLINE = "550 5.6.0 Message contains bare CR or LF characters"
NUL_IN_DATA = "550 5.6.0 Message contains NUL characters"
BAD_HEADER_BYTES = "550 5.6.0 Message header is not valid UTF-8"

# -- local trouble ------------------------------------------------------------
BROKER_DOWN = "451 4.3.0 Error: queue unavailable, try again later"
SPOOL_FULL = "452 4.3.1 Insufficient system storage"
LOCAL_ERROR = "451 4.3.0 Error: local error in processing"
POLICY_REJECT = "550 5.7.1 Rejected by policy"
POLICY_TEMPFAIL = "451 4.7.1 Try again later"
