"""The sans-I/O state machine, line by line, plus a fuzz invariant over whole sessions."""

from __future__ import annotations

from base64 import b64encode

from hypothesis import given, settings
from hypothesis import strategies as st

from mailpipe.ingress import replies
from mailpipe.ingress.protocol import (ALLOWED, AuthRequest, Close, MailRequest, MessageRequest, RcptRequest, Reply,
                              Settings, SmtpCore, StartTls, State)
from mailpipe.ingress.grammar import Verb

ACCEPT = {AuthRequest: replies.AUTH_OK, MailRequest: replies.MAIL_OK, RcptRequest: replies.RCPT_OK,
          MessageRequest: replies.QUEUED.format(queue_id="Q1")}


def core(**settings) -> SmtpCore:
    base = {"hostname": "mx.test", "max_size": 1000}
    return SmtpCore(Settings(**{**base, **settings}))


def run(smtp: SmtpCore, data: bytes, answer=ACCEPT) -> list[str]:
    """Feed `data`, answer every request from `answer`, return the reply texts (Close as 'CLOSE')."""
    texts: list[str] = []
    outputs = smtp.receive(data)
    for _ in range(1000):
        if not outputs:
            break
        out = outputs.pop(0)
        if isinstance(out, Reply):
            texts.append(out.text)
        elif isinstance(out, Close):
            texts.append("CLOSE")
        elif isinstance(out, StartTls):
            texts.append("STARTTLS")
        else:
            identity = "user@example.test" if isinstance(out, AuthRequest) else None
            outputs += smtp.resolve(answer[type(out)], identity=identity)
    return texts


def test_pipelined_transaction():
    smtp = core()
    out = run(smtp, b"EHLO c\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\nhi\r\n.\r\nQUIT\r\n")
    assert out[1:] == [replies.MAIL_OK, replies.RCPT_OK, replies.START_DATA, ACCEPT[MessageRequest],
                       replies.BYE, "CLOSE"]
    assert smtp.closed and smtp.messages == 1


def test_ehlo_lists_extensions():
    smtp = core(tls_available=True)
    [ehlo] = run(smtp, b"EHLO c\r\n")
    lines = [line[4:] for line in ehlo.split("\r\n")]
    assert lines == ["mx.test", "PIPELINING", "SIZE 1000", "8BITMIME", "ENHANCEDSTATUSCODES", "SMTPUTF8",
                     "CHUNKING", "STARTTLS"]


def test_out_of_sequence_is_503():
    smtp = core()
    assert run(smtp, b"MAIL FROM:<a@x.test>\r\n") == [replies.NEED_HELO]
    assert run(smtp, b"EHLO c\r\nRCPT TO:<b@y.test>\r\nDATA\r\n")[1:] == [replies.NEED_MAIL, replies.NEED_RCPT]
    assert run(smtp, b"MAIL FROM:<a@x.test>\r\nMAIL FROM:<a@x.test>\r\nDATA\r\n") == \
        [replies.MAIL_OK, replies.NESTED_MAIL, replies.NEED_RCPT]
    assert run(smtp, b"AUTH PLAIN\r\n") == [replies.AUTH_IN_TRANSACTION]


def test_transition_table_covers_every_verb_but_obsolete():
    assert set(ALLOWED) | {Verb.SEND, Verb.SOML, Verb.SAML, Verb.TURN} == set(Verb)


def test_obsolete_vrfy_expn_help():
    smtp = core()
    out = run(smtp, b"SEND x\r\nSOML x\r\nSAML x\r\nTURN\r\nVRFY bob\r\nEXPN list\r\nHELP\r\n")
    assert out == [replies.OBSOLETE] * 4 + [replies.VRFY, replies.EXPN_REFUSED, replies.HELP]


def test_mail_parameters():
    smtp = core()
    run(smtp, b"EHLO c\r\n")
    assert run(smtp, b"MAIL FROM:<a@x.test> SIZE=1001\r\n") == [replies.SIZE_EXCEEDED]
    assert run(smtp, b"MAIL FROM:<a@x.test> RET=FULL\r\n") == [replies.UNKNOWN_PARAM]
    assert run(smtp, b"MAIL FROM:<a@x.test> BODY=BINARYMIME\r\n") == [replies.BAD_PARAM_VALUE]
    assert run(smtp, b"MAIL FROM:<a@x.test> SIZE=10 SIZE=10\r\n") == [replies.UNKNOWN_PARAM]
    assert run(smtp, b"MAIL FROM:<a@x.test> SIZE=10 BODY=8BITMIME\r\n") == [replies.MAIL_OK]
    assert run(smtp, b"RCPT TO:<b@y.test> NOTIFY=NEVER\r\n") == [replies.UNKNOWN_PARAM]


def test_utf8_addresses_need_smtputf8():
    smtp = core()
    run(smtp, b"EHLO c\r\n")
    assert run(smtp, "MAIL FROM:<jürgen@x.test>\r\n".encode()) == [replies.NON_ASCII]
    assert run(smtp, b"MAIL FROM:<a@x.test>\r\n" + "RCPT TO:<jürgen@x.test>\r\n".encode()) == \
        [replies.MAIL_OK, replies.NON_ASCII]
    run(smtp, b"RSET\r\n")
    assert run(smtp, "MAIL FROM:<jürgen@x.test> SMTPUTF8\r\nRCPT TO:<ü@y.test>\r\n".encode()) == \
        [replies.MAIL_OK, replies.RCPT_OK]


def test_recipient_limit():
    smtp = core(max_recipients=2)
    out = run(smtp, b"EHLO c\r\nMAIL FROM:<a@x.test>\r\n" + b"RCPT TO:<b@y.test>\r\n" * 3)
    assert out[-3:] == [replies.RCPT_OK, replies.RCPT_OK, replies.TOO_MANY_RECIPIENTS]


def test_line_length_limit_and_recovery():
    smtp = core(max_line=512)
    assert run(smtp, b"NOOP " + b"x" * 600 + b"\r\nNOOP\r\n") == [replies.LINE_TOO_LONG, replies.OK]
    out = run(smtp, b"NOOP " + b"x" * 2000)                   # no line end yet: answered once
    assert out == [replies.LINE_TOO_LONG]
    assert run(smtp, b"y" * 3000 + b"\r\nNOOP\r\n") == [replies.OK]


def test_errors_lead_to_421():
    smtp = core(max_errors=3)
    assert run(smtp, b"BOGUS\r\nBOGUS\r\nBOGUS\r\nNOOP\r\n") == \
        [replies.UNKNOWN_COMMAND] * 3 + [replies.TOO_MANY_ERRORS, "CLOSE"]


def test_messages_per_connection():
    smtp = core(max_messages=1)
    message = b"MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\nx\r\n.\r\n"
    out = run(smtp, b"EHLO c\r\n" + message + message)
    assert out[-2:] == [replies.TOO_MANY_MESSAGES, "CLOSE"]


def test_starttls_discards_pipelined_plaintext():
    smtp = core(tls_available=True)
    out = run(smtp, b"EHLO c\r\nSTARTTLS\r\nMAIL FROM:<injected@x.test>\r\n")
    assert out[1:] == [replies.TLS_READY, "STARTTLS"]
    smtp.tls_started()
    assert smtp.state is State.FRESH and smtp.session.ssl
    assert run(smtp, b"NOOP\r\n") == [replies.OK]              # the injected MAIL never ran
    assert run(smtp, b"STARTTLS\r\n") == [replies.TLS_ACTIVE]


def test_auth_plain_and_login_dialogues():
    smtp = core(plaintext_auth=True)
    run(smtp, b"EHLO c\r\n")
    assert run(smtp, b"AUTH PLAIN\r\n") == ["334 "]
    assert run(smtp, b"*\r\n") == [replies.AUTH_CANCELLED]
    assert run(smtp, b"AUTH PLAIN !!notbase64\r\n") == [replies.AUTH_BAD_BASE64]
    assert run(smtp, b"AUTH CRAM-MD5\r\n") == [replies.AUTH_MECHANISM]
    login = b"AUTH LOGIN\r\n" + b64encode(b"user@example.test") + b"\r\n" + b64encode(b"pw") + b"\r\n"
    assert run(smtp, login) == ["334 VXNlcm5hbWU6", "334 UGFzc3dvcmQ6", replies.AUTH_OK]
    assert smtp.session.authenticated and smtp.session.auth_data == "user@example.test"


def test_auth_request_carries_the_credentials():
    smtp = core(plaintext_auth=True)
    outputs = smtp.receive(b"EHLO c\r\nAUTH PLAIN " + b64encode(b"\x00bob@example.test\x00s3cret") + b"\r\n")
    request = outputs[-1]
    assert isinstance(request, AuthRequest)
    assert (request.username, request.password) == ("bob@example.test", "s3cret")
    assert "s3cret" not in repr(request)
    smtp.resolve(replies.AUTH_FAILED)
    assert not smtp.session.authenticated


def test_auth_needs_tls_unless_allowed():
    smtp = core()
    assert run(smtp, b"EHLO c\r\nAUTH PLAIN\r\n")[1:] == [replies.AUTH_NEEDS_TLS]


def test_submission_needs_auth_before_mail():
    smtp = core(auth_required=True, plaintext_auth=True)
    assert run(smtp, b"EHLO c\r\nMAIL FROM:<a@x.test>\r\n")[1:] == [replies.AUTH_REQUIRED]


def test_rejected_data_is_not_a_message():
    smtp = core()
    out = run(smtp, b"EHLO c\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n"
                    b"x\n.\nMAIL FROM:<e@x.test>\r\n.\r\nNOOP\r\n")
    assert out[-2:] == [replies.BARE_NEWLINE, replies.OK]
    assert smtp.messages == 0


_TOKENS = [b"EHLO c\r\n", b"HELO c\r\n", b"MAIL FROM:<a@x.test>\r\n", b"RCPT TO:<b@y.test>\r\n", b"DATA\r\n",
           b"\r\n.\r\n", b".\r\n", b"RSET\r\n", b"AUTH PLAIN\r\n", b"AUTH LOGIN\r\n", b"STARTTLS\r\n",
           b"QUIT\r\n", b"\n", b"\r", b"\x00", b"\xff", b"x" * 700, b"*\r\n", b"AHUAcA==\r\n", b"BDAT 1\r\n"]


@settings(max_examples=600, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(_TOKENS), st.binary(max_size=40)), max_size=30),
       st.booleans())
def test_fuzz_sessions_never_raise(parts, bytewise):
    smtp = core(max_line=512, tls_available=True, plaintext_auth=True, max_errors=50)
    data = b"".join(parts)
    chunks = [data[i:i + 1] for i in range(len(data))] if bytewise else [data]
    for chunk in chunks:
        for text in run(smtp, chunk):
            assert text in ("CLOSE", "STARTTLS") or text[:1] in "2345"
            assert "Traceback" not in text               # no exception text to a client, in any reply
            assert "Error:" not in text or text[:1] in "45"
        if smtp.state is State.WAIT:          # STARTTLS: pretend the handshake happened
            smtp.tls_started()
        if smtp.closed:
            break


# -- CHUNKING (RFC 3030) -------------------------------------------------------
BDAT_START = b"EHLO c\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\n"


def test_bdat_pipelined_session():
    smtp = core()
    out = run(smtp, BDAT_START + b"BDAT 9\r\nSubject: BDAT 8 LAST\r\n\r\nbody\r\nNOOP\r\n")
    assert out[1:] == [replies.MAIL_OK, replies.RCPT_OK, replies.CHUNK_OK.format(size=9),
                       ACCEPT[MessageRequest], replies.OK]
    assert smtp.messages == 1


def test_bdat_content_is_passed_on():
    smtp = core()
    smtp.receive(BDAT_START)
    smtp.resolve(replies.MAIL_OK)
    smtp.resolve(replies.RCPT_OK)
    outputs = smtp.receive(b"BDAT 4\r\nab\r\nBDAT 4 LAST\r\ncd\r\n")
    [request] = [o for o in outputs if isinstance(o, MessageRequest)]
    assert request.envelope.original_content == b"ab\r\ncd\r\n"


def test_bdat_bare_lf_is_rejected():
    smtp = core()
    out = run(smtp, BDAT_START + b"BDAT 4\r\nab\r\nBDAT 3 LAST\r\ncd\n")
    assert out[-1] == replies.BARE_NEWLINE and smtp.messages == 0


def test_bdat_octets_are_never_commands():
    smtp = core()
    payload = b"x\r\nMAIL FROM:<evil@x.test>\r\nRCPT TO:<c@y.test>\r\nDATA\r\n"
    out = run(smtp, b"EHLO c\r\nBDAT %d LAST\r\n" % len(payload) + payload + b"NOOP\r\n")
    assert out[1:] == [replies.NEED_RCPT, replies.OK]       # out of sequence, octets eaten, no MAIL ran


def test_bdat_rejects_bad_content_and_size():
    smtp = core(max_size=20)
    out = run(smtp, BDAT_START + b"BDAT 30 LAST\r\n" + b"y" * 30 + b"NOOP\r\n")
    assert out[-2:] == [replies.SIZE_EXCEEDED, replies.OK]
    smtp = core()
    out = run(smtp, BDAT_START + b"BDAT 5 LAST\r\na\x00b\r\n")
    assert out[-1] == replies.NUL_IN_DATA


def test_data_after_bdat_and_malformed_bdat():
    smtp = core()
    assert run(smtp, BDAT_START + b"BDAT 2\r\nabDATA\r\n")[-1] == replies.DATA_AFTER_BDAT
    assert run(smtp, b"RSET\r\nBDAT 1x\r\nMAIL FROM:<a@x.test>\r\n") == \
        [replies.OK, replies.SYNTAX_BDAT, replies.BDAT_BROKEN, "CLOSE"]


def test_parameters_need_ehlo():
    smtp = core()
    assert run(smtp, b"HELO c\r\nMAIL FROM:<a@x.test> SIZE=10\r\nMAIL FROM:<a@x.test>\r\n")[1:] == \
        [replies.UNKNOWN_PARAM, replies.MAIL_OK]


def test_starttls_forgets_authentication():
    smtp = core(tls_available=True, plaintext_auth=True)
    run(smtp, b"EHLO c\r\nAUTH PLAIN " + b64encode(b"\x00u@example.test\x00pw") + b"\r\n")
    assert smtp.session.authenticated
    run(smtp, b"STARTTLS\r\n")
    smtp.tls_started()
    assert not smtp.session.authenticated and smtp.session.auth_data is None
