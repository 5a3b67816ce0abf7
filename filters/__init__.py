"""The pure filters of the pipeline: message (``FilterInput``) in, ``Verdict`` out.

One module per filter, one verdict type for all of them (``filters.verdict``).
Daemon clients are injected; a filter never retries, sleeps or touches the
spool - the stage task in ``workers/`` records the verdict and acts on it.

- ``antivirus``  ClamAV through clamd (``clamd_client``: the PyPI ``clamd``
                 package wrapped): clean -> accept + ``X-Virus-Scanned``;
                 infected -> quarantine or discard; clamd down -> tempfail
                 (or accept marked unscanned when configured).
- ``spam``       SpamAssassin through spamd (``spamc``: our own SPAMC/1.5
                 client): score -> tag / junk / quarantine / discard by
                 thresholds, ``X-Spam-Status/-Score/-Flag`` headers.
- ``rules``      the operator's rules file (package ``filters.rules``):
                 IP/CIDR, HELO, sender, recipient, header, body keyword or
                 regex, attachment, size; all/any/not; also applied to the
                 envelope during the SMTP dialogue.

Each ``from_config(section, ...)`` returns ``None`` when the filter is not
configured (no clamd, no spamd, no rules file). ``endpoint`` parses the
``tcp://host:port`` / ``unix:/path`` daemon addresses both clients share.
"""
