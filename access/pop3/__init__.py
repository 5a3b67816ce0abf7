"""POP3 (RFC 1939, 2449, 2595, 5034) over the users' Maildir INBOX.

Modules, from pure to I/O:

- ``parser``   command grammar and line framing (pure)
- (SASL PLAIN / LOGIN decoding is ``core.sasl``, shared with SMTP and IMAP)
- ``states``   the state enum and the one transition table (pure)
- ``replies``  every reply, as named constants shared with the tests (pure)
- ``effects``  what the core asks the shell to do (pure)
- ``session``  the sans-I/O protocol core: lines in, effects out (pure)
- ``wire``     stored octets -> RETR/TOP octets, and their size (pure)
- ``maildrop`` lock, scan, read, mark Seen, delete in the Maildir (files)
- ``sizecache`` remembered wire sizes per message (files)
- ``login``    rate limit + password + lock, run in a worker thread
- ``idle``     the per-connection idle watchdog (asyncio)
- ``connection`` one connection's asyncio shell; ``server`` the listeners

Deletions happen only when a client sends QUIT in the TRANSACTION state; no
other path (drop, timeout, error, shutdown) reaches the UPDATE state.

Must not: import the IMAP server's storage modules; the two servers agree
only on the Maildir conventions (message identity = file name before ``:2,``).
"""
