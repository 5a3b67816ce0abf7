"""SMTP replies of the ingress, as named constants shared by code and tests.

Every reply carries an enhanced status code (RFC 2034, RFC 3463). None of them
ever includes exception text.
"""

OK = "250 2.0.0 Ok"
QUEUED = "250 2.0.0 Ok: queued as {queue_id}"
RCPT_OK = "250 2.1.5 Ok"
UNKNOWN_USER = "550 5.1.1 <{address}>: Recipient address rejected: User unknown"
RELAY_DENIED = "554 5.7.1 <{address}>: Relay access denied"
BAD_ADDRESS = "501 5.1.3 Bad recipient address syntax"
TOO_MANY_RECIPIENTS = "452 4.5.3 Too many recipients"
NO_VALID_RECIPIENTS = "554 5.5.1 Error: no valid recipients"
BROKER_DOWN = "451 4.3.0 Error: queue unavailable, try again later"
SPOOL_FULL = "452 4.3.1 Insufficient system storage"
LOCAL_ERROR = "451 4.3.0 Error: local error in processing"
POLICY_REJECT = "550 5.7.1 Rejected by policy"
POLICY_TEMPFAIL = "451 4.7.1 Try again later"
